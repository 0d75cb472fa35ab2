/**
 * `/peers` against real peers on loopback: a second pacsnode (HTTP Basic, behind a recording forwarder that shows
 * what reached it), a third pacsnode over HTTPS with client certificates (test PKI), a real Orthanc 1.10 started with
 * a temp configuration (both directions), a server that accepts connections and never answers (HttpTimeout), a
 * port nobody listens on, and a node HTTPS server whose certificate comes from another CA.
 */
import { expect } from 'chai';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext } from '../src/app/context.js';
import { buildConfig } from '../src/config/load.js';
import { buildHttpServer, startHttpServer } from '../src/rest/http-server.js';
import { ImplicitVRLittleEndian } from '../src/dicom/transfer-syntax.js';
import { generateUid } from '../src/dicom/uids.js';
import { tempServer, type TestServer } from './helpers/context.js';
import { makeInstance } from './helpers/factory.js';
import { freePort, waitFor } from './helpers/interop.js';
import { ORTHANC_BINARY, startOrthanc, startSilentPeer, type Orthanc } from './helpers/networking.js';
import { HAS_OPENSSL, makePki } from './helpers/pki.js';

interface Answer {
  status: number;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

async function call(base: string, method: string, path: string, body?: string | Buffer | object, headers?: Record<string, string>): Promise<Answer> {
  const payload = body === undefined || typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const res = await fetch(`${base}${path}`, { method, body: payload, headers });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, text, body: parsed };
}

/** A study of `count` instances; answers the files and the study's UID. */
function study(count: number, patientId = 'PEERS1'): { files: Buffer[]; studyUid: string } {
  const studyUid = generateUid();
  const seriesUid = generateUid();
  const files = Array.from({ length: count }, (_, i) =>
    makeInstance({ patientId, studyInstanceUid: studyUid, seriesInstanceUid: seriesUid, instanceNumber: i + 1 }),
  );
  return { files, studyUid };
}

/** Stores the files in a server through its REST API; answers the study's public ID and the instances' IDs. */
async function upload(base: string, files: Buffer[], auth?: string): Promise<{ studyId: string; instances: string[] }> {
  const instances: string[] = [];
  let studyId = '';
  for (const file of files) {
    const r = await call(base, 'POST', '/instances', file, auth ? { Authorization: auth } : undefined);
    expect(r.status, r.text).to.equal(200);
    instances.push(r.body.ID);
    studyId = r.body.ParentStudy;
  }
  return { studyId, instances };
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

interface Recorded {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** The client's port: requests on one kept-alive connection share it. */
  port: number | undefined;
}

/**
 * A forwarder in front of a server: records each request's method, URL and headers, then passes it on as it is.
 * With `hold`, requests are kept unanswered until `release()`. With `'proxy'` as target, an HTTP proxy: absolute-form
 * requests go to the host they name, CONNECT opens a tunnel.
 */
async function forwarder(target: string | 'proxy', options: { hold?: boolean } = {}) {
  const seen: Recorded[] = [];
  const held: http.IncomingMessage[] = [];
  let holding = options.hold ?? false;
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, port: req.socket.remotePort });
    if (holding) return void held.push(req);
    const to = new URL(target === 'proxy' ? (req.url ?? '') : target);
    const path = target === 'proxy' ? `${to.pathname}${to.search}` : req.url;
    const out = http.request({ host: to.hostname, port: to.port, method: req.method, path, headers: req.headers }, (answer) => {
      // Without the receiver's `Keep-Alive: timeout=1` hint (Orthanc's default), with which Node's
      // client never keeps a connection: here the sender's connection is kept, and its reuse can be checked.
      const { 'keep-alive': _hint, ...headers } = answer.headers;
      res.writeHead(answer.statusCode ?? 502, headers);
      answer.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  const tunnels = new Set<Socket>();
  server.on('connect', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, port: req.socket.remotePort });
    tunnels.add(socket);
    socket.on('close', () => tunnels.delete(socket));
    const to = new URL(`http://${req.url ?? ''}`);
    const upstream = connect(Number(to.port), to.hostname, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(socket).pipe(upstream);
    });
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/`,
    seen,
    held,
    /** Drops the held requests' connections; the next requests are forwarded. */
    release() {
      holding = false;
      server.closeAllConnections();
    },
    close() {
      server.closeAllConnections();
      for (const t of tunnels) t.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('REST /peers', function () {
  this.timeout(60000);
  let dir: string;
  let a: TestServer; // pacsnode under test
  let b: TestServer; // a second pacsnode, with HTTP Basic
  let front: Awaited<ReturnType<typeof forwarder>>;
  let silent: Awaited<ReturnType<typeof startSilentPeer>>;
  let deadPort: number;
  let source: { studyId: string; instances: string[] };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hd-peers-'));
    b = await tempServer({ AuthenticationEnabled: true, RegisteredUsers: { alice: 'wonder' } });
    front = await forwarder(b.url);
    silent = await startSilentPeer();
    deadPort = await freePort();
    a = await tempServer({
      LogExportedResources: true,
      HttpTimeout: 1,
      OrthancPeers: {
        b: { Url: front.url, Username: 'alice', Password: 'wonder', HttpHeaders: { 'X-Pacs-Tenant': 'north wing' }, Site: 'B' },
        wrongpw: [front.url, 'alice', 'nope'],
        silent: [`http://127.0.0.1:${silent.port}`],
        dead: [`http://127.0.0.1:${deadPort}/`],
      },
    });
    source = await upload(a.url, study(3).files);
  });

  after(async () => {
    await a?.close();
    await front?.close();
    await silent?.close();
    await b?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe('definitions', () => {
    it('lists the peers, expanded as Orthanc does (secrets null, header names only, user properties)', async () => {
      expect((await call(a.url, 'GET', '/peers')).body).to.deep.equal(['b', 'dead', 'silent', 'wrongpw']);
      const expanded = (await call(a.url, 'GET', '/peers?expand')).body;
      expect(expanded.b).to.deep.equal({
        Url: front.url,
        Username: 'alice',
        Password: null,
        Pkcs11: false,
        Timeout: 0,
        HttpHeaders: ['X-Pacs-Tenant'],
        Site: 'B',
      });
      expect(expanded.dead).to.deep.equal({ Url: `http://127.0.0.1:${deadPort}/`, Pkcs11: false, Timeout: 0, HttpHeaders: [] });
      // A URL without its trailing slash gets one, as in Orthanc.
      expect(expanded.silent.Url).to.equal(`http://127.0.0.1:${silent.port}/`);
      expect((await call(a.url, 'GET', '/peers/b/configuration')).body).to.deep.equal(expanded.b);
      expect((await call(a.url, 'GET', '/peers/b')).body).to.deep.equal(['configuration', 'store', 'store-straight', 'system']);
    });

    it('defines, replaces and deletes peers with PUT and DELETE', async () => {
      let r = await call(a.url, 'PUT', '/peers/extra', ['http://extra.invalid:8042', 'bob', 'pw']);
      expect([r.status, r.text]).to.deep.equal([200, '']);
      expect((await call(a.url, 'GET', '/peers/extra/configuration')).body).to.deep.equal({
        Url: 'http://extra.invalid:8042/',
        Username: 'bob',
        Password: null,
        Pkcs11: false,
        Timeout: 0,
        HttpHeaders: [],
      });
      r = await call(a.url, 'PUT', '/peers/extra', { Url: 'https://extra.invalid/', Timeout: 7, HttpHeaders: { 'X-A': '1' } });
      expect(r.status).to.equal(200);
      expect((await call(a.url, 'GET', '/peers/extra/configuration')).body).to.deep.equal({
        Url: 'https://extra.invalid/',
        Pkcs11: false,
        Timeout: 7,
        HttpHeaders: ['X-A'],
      });
      expect((await call(a.url, 'DELETE', '/peers/extra')).status).to.equal(200);
      expect((await call(a.url, 'GET', '/peers')).body).not.to.include('extra');
      r = await call(a.url, 'DELETE', '/peers/extra');
      expect(r.status).to.equal(404);
      expect(r.body.Details).to.equal('Unknown Orthanc peer: extra');
    });

    it('masks a password written in the URL in every answer, and still sends it as Basic credentials', async () => {
      const withCredentials = front.url.replace('http://', 'http://alice:wonder@');
      expect((await call(a.url, 'PUT', '/peers/urlcreds', [withCredentials])).status).to.equal(200);
      try {
        const masked = front.url.replace('http://', 'http://alice:***@');
        const expanded = JSON.stringify((await call(a.url, 'GET', '/peers?expand')).body);
        expect(expanded).to.not.include('wonder');
        expect((await call(a.url, 'GET', '/peers/urlcreds/configuration')).body.Url).to.match(new RegExp(`^${masked.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/?$`));
        const from = front.seen.length;
        const r = await call(a.url, 'POST', '/peers/urlcreds/store', [source.instances[0]]);
        expect(r.status, r.text).to.equal(200);
        expect(JSON.stringify(r.body)).to.not.include('wonder');
        expect(front.seen.slice(from).map((x) => x.headers.authorization)).to.deep.equal([basic('alice', 'wonder')]);
      } finally {
        await call(a.url, 'DELETE', '/peers/urlcreds');
      }
    });

    it('refuses malformed definitions with 400 and changes nothing', async () => {
      const before = (await call(a.url, 'GET', '/peers?expand')).body;
      const cases: Array<[string, string | object, string]> = [
        ['p', '{nope', 'The body must contain the definition of a peer'],
        ['p', ['http://h/', 'user'], 'the HTTP password is not provided'],
        ['p', ['ftp://h/'], 'only http:// and https:// are allowed'],
        ['p', { Url: 'http://h/', HttpHeaders: { 'X-Bad': 'a\nb' } }, 'must be a string without control characters'],
        ['p', { Url: 'http://h/', Timeout: 'soon' }, 'Timeout must be a non-negative integer'],
        ['p', { Url: 'http://h/', CertificateFile: join(dir, 'missing.pem') }, 'cannot open the certificate file'],
        ['a.b', ['http://h/'], 'Only alphanumeric, dash characters and underscores are allowed'],
        ['b', '42', 'must be ["url"], ["url", "username", "password"] or an object'],
      ];
      for (const [name, body, message] of cases) {
        const r = await call(a.url, 'PUT', `/peers/${name}`, body);
        expect(r.status, `${JSON.stringify(body)}: ${r.text}`).to.equal(400);
        expect(r.body.Details).to.include(message);
      }
      expect((await call(a.url, 'GET', '/peers?expand')).body).to.deep.equal(before);
    });

    it('keeps the peers in the index with OrthancPeersInDatabase (the configuration is then ignored)', async () => {
      const storage = join(dir, 'in-db');
      const config = buildConfig({}, 'test', {
        StorageDirectory: storage,
        IndexDirectory: storage,
        SyncStorageArea: false,
        OrthancPeersInDatabase: true,
        OrthancPeers: { fromfile: ['http://file.invalid/'] },
      }).config;
      let ctx = await createContext(config);
      try {
        expect(ctx.peers.names()).to.deep.equal([]);
        ctx.peers.put('kept', { Url: 'http://kept.invalid:8042/', Username: 'u', Password: 'secret', HttpHeaders: { 'X-A': 'v' } });
      } finally {
        await ctx.close();
      }
      ctx = await createContext(config);
      try {
        expect(ctx.peers.names()).to.deep.equal(['kept']);
        expect(ctx.peers.get('kept')).to.include({ url: 'http://kept.invalid:8042/', username: 'u', password: 'secret' });
        expect(ctx.peers.get('kept').httpHeaders).to.deep.equal({ 'X-A': 'v' });
      } finally {
        await ctx.close();
      }
    });
  });

  describe('errors', () => {
    it('answers 404 for an unknown peer on every route', async () => {
      const routes: Array<[string, string, string?]> = [
        ['GET', '/peers/nope'],
        ['GET', '/peers/nope/configuration'],
        ['GET', '/peers/nope/system'],
        ['POST', '/peers/nope/store', JSON.stringify(source.instances)],
        ['POST', '/peers/nope/store-straight', 'x'],
      ];
      for (const [method, path, body] of routes) {
        const r = await call(a.url, method, path, body);
        expect(r.status, `${method} ${path}`).to.equal(404);
        expect(r.body.Details).to.equal('No peer with symbolic name: nope');
      }
    });

    it('refuses malformed store bodies with 400, before sending anything or logging an export', async () => {
      const exportsBefore = (await call(a.url, 'GET', '/exports')).body.Exports.length;
      const jobsBefore = (await call(a.url, 'GET', '/jobs')).body.length;
      const sent = front.seen.length;
      const cases: Array<[string | object, string]> = [
        ['not json', 'Must provide a JSON value'],
        [{ Synchronous: true }, 'Missing field in JSON: "Resources"'],
        [{ Resources: source.studyId }, 'JSON field "Resources" must contain an array'],
        [[42], 'must be specified as a JSON array of strings'],
        [['not-an-id'], 'This string is not a valid Orthanc identifier: not-an-id'],
        ['42', 'Must provide a JSON object, or a JSON array of strings'],
        [{ Resources: [source.studyId], Synchronous: 'no' }, 'Boolean value expected in field: Synchronous'],
        [{ Resources: [source.studyId], Compress: 1 }, 'Boolean value expected in field: Compress'],
        [{ Resources: [source.studyId], Transcode: '1.2.3' }, 'Unknown transfer syntax UID: 1.2.3'],
        [{ Resources: [source.studyId], Transcode: '1.2.840.10008.1.2.4.50' }, 'pacsnode cannot transcode to 1.2.840.10008.1.2.4.50'],
      ];
      for (const [body, message] of cases) {
        const r = await call(a.url, 'POST', '/peers/b/store', typeof body === 'string' ? body : JSON.stringify(body));
        expect(r.status, `${JSON.stringify(body)}: ${r.text}`).to.equal(400);
        expect(r.body.Details).to.include(message);
      }
      const unknown = await call(a.url, 'POST', '/peers/b/store', JSON.stringify(['0000000a-00000000-00000000-00000000-00000000']));
      expect(unknown.status).to.equal(404);
      expect(front.seen.length).to.equal(sent);
      expect((await call(a.url, 'GET', '/exports')).body.Exports.length).to.equal(exportsBefore);
      expect((await call(a.url, 'GET', '/jobs')).body.length).to.equal(jobsBefore);
    });

    it('fails clearly, without hanging, when the peer never answers (HttpTimeout)', async () => {
      const r = await call(a.url, 'GET', '/peers/silent/system');
      expect(r.status).to.equal(500);
      expect(r.body.Details).to.match(/^peer "silent": GET http:\/\/127\.0\.0\.1:\d+\/system: no progress for 1 s \(HttpTimeout\)/);
      const job = await call(a.url, 'POST', '/peers/silent/store', { Resources: [source.instances[0]], Synchronous: false });
      expect(job.status).to.equal(200);
      const info = await finished(job.body.ID);
      expect(info.State).to.equal('Failure');
      expect(info.ErrorCode).to.equal(9);
      expect(info.ErrorDetails).to.include('no progress for 1 s (HttpTimeout)');
      // A peer's own Timeout wins over HttpTimeout.
      await call(a.url, 'PUT', '/peers/slow', { Url: `http://127.0.0.1:${silent.port}/`, Timeout: 1 });
      const own = await call(a.url, 'GET', '/peers/slow/system');
      expect(own.body.Details).to.include('no progress for 1 s (Timeout of peer "slow")');
      await call(a.url, 'DELETE', '/peers/slow');
    });

    it('reports an unreachable peer in the answer and in the job', async () => {
      let r = await call(a.url, 'GET', '/peers/dead/system');
      expect(r.status).to.equal(500);
      expect(r.body.Details).to.include('connection refused');
      r = await call(a.url, 'POST', '/peers/dead/store', [source.instances[0]]);
      expect(r.status).to.equal(500);
      expect(r.body.OrthancError).to.equal('Error in the network protocol');
      expect(r.body.Details).to.match(/^peer "dead": POST http:\/\/127\.0\.0\.1:\d+\/instances: connection refused/);
      r = await call(a.url, 'POST', '/peers/dead/store-straight', makeInstance());
      expect(r.status).to.equal(500);
      expect(r.body.Details).to.include('connection refused');
      // Permissive: the job goes on past the failures and succeeds, counting them.
      r = await call(a.url, 'POST', '/peers/dead/store', { Resources: [source.studyId], Permissive: true });
      expect(r.status, r.text).to.equal(200);
      expect(r.body).to.include({ InstancesCount: 3, FailedInstancesCount: 3 });
    });

    it('refuses PKCS#11 client authentication (Not implemented yet)', async () => {
      await call(a.url, 'PUT', '/peers/hsm', { Url: front.url, Pkcs11: true });
      const r = await call(a.url, 'GET', '/peers/hsm/system');
      expect([r.status, r.body.OrthancError]).to.deep.equal([500, 'Not implemented yet']);
      expect(r.body.Details).to.equal('peer "hsm": PKCS#11 client authentication is not supported');
      expect((await call(a.url, 'DELETE', '/peers/hsm')).status).to.equal(200);
    });

    it('reports the HTTP status of a peer that refuses the credentials', async () => {
      const r = await call(a.url, 'POST', '/peers/wrongpw/store', [source.instances[0]]);
      expect(r.status).to.equal(500);
      expect(r.body.Details).to.match(/^peer "wrongpw" answered HTTP 401 to POST http:\/\/127\.0\.0\.1:\d+\/instances/);
      const system = await call(a.url, 'GET', '/peers/wrongpw/system');
      expect(system.status).to.equal(401);
    });
  });

  async function finished(id: string) {
    let info: Answer['body'];
    await waitFor(async () => {
      info = (await call(a.url, 'GET', `/jobs/${id}`)).body;
      return info.State === 'Success' || info.State === 'Failure';
    }, `job ${id}`);
    return info;
  }

  describe('to a second pacsnode', () => {
    it('stores a study synchronously with Basic auth and the HttpHeaders, and logs the export', async () => {
      const from = front.seen.length;
      const r = await call(a.url, 'POST', '/peers/b/store', source.studyId);
      expect(r.status, r.text).to.equal(200);
      expect(r.body).to.deep.include({
        Description: 'REST API',
        InstancesCount: 3,
        FailedInstancesCount: 0,
        ParentResources: [source.studyId],
        Compress: false,
        SizeMB: 0,
      });
      expect(r.body.Peer).to.deep.equal({
        Url: front.url,
        Username: 'alice',
        Pkcs11: false,
        Timeout: 0,
        HttpHeaders: { 'X-Pacs-Tenant': 'north wing' },
        Site: 'B',
      });
      const sent = front.seen.slice(from);
      expect(sent.map((s) => `${s.method} ${s.url}`)).to.deep.equal(Array(3).fill('POST /instances'));
      for (const s of sent) {
        expect(s.headers.authorization).to.equal(basic('alice', 'wonder'));
        expect(s.headers['x-pacs-tenant']).to.equal('north wing');
        expect(s.headers['content-type']).to.equal('application/dicom');
      }
      expect(Number(r.body.Size)).to.equal(sent.reduce((n, s) => n + Number(s.headers['content-length']), 0));
      // One kept-alive connection for the whole job (each streamed file ends its request, freeing the connection).
      expect(new Set(sent.map((s) => s.port)).size).to.equal(1);
      const received = (await call(b.url, 'GET', '/instances', undefined, { Authorization: basic('alice', 'wonder') })).body;
      expect(received).to.include.members(source.instances);
      const exports = (await call(a.url, 'GET', '/exports')).body.Exports;
      expect(exports.at(-1)).to.include({ ID: source.studyId, ResourceType: 'Study', RemoteModality: 'b', PatientID: 'PEERS1' });
    });

    it('stores with Compress: each file gzipped on the wire, decoded by the receiving pacsnode', async () => {
      const more = await upload(a.url, study(2, 'PEERSGZ').files);
      const from = front.seen.length;
      const r = await call(a.url, 'POST', '/peers/b/store', { Resources: more.instances, Compress: true });
      expect(r.status, r.text).to.equal(200);
      expect(r.body).to.include({ InstancesCount: 2, FailedInstancesCount: 0, Compress: true });
      const sent = front.seen.slice(from);
      expect(sent.map((s) => s.headers['content-encoding'])).to.deep.equal(['gzip', 'gzip']);
      const auth = { Authorization: basic('alice', 'wonder') };
      for (const id of more.instances) {
        const original = await fetch(`${a.url}/instances/${id}/file`);
        const copy = await fetch(`${b.url}/instances/${id}/file`, { headers: auth });
        expect(copy.status).to.equal(200);
        expect(Buffer.from(await copy.arrayBuffer()).equals(Buffer.from(await original.arrayBuffer()))).to.equal(true);
      }
    });

    it('runs an asynchronous job (Synchronous false) to its end', async () => {
      const more = await upload(a.url, study(2, 'PEERS2').files);
      const r = await call(a.url, 'POST', '/peers/b/store', { Resources: more.instances, Synchronous: false, Priority: 3 });
      expect(r.body).to.deep.equal({ ID: r.body.ID, Path: `/jobs/${r.body.ID}` });
      const info = await finished(r.body.ID);
      expect(info).to.include({ Type: 'OrthancPeerStore', State: 'Success', Progress: 100, Priority: 3 });
      expect(info.Content).to.include({ InstancesCount: 2, FailedInstancesCount: 0 });
      const received = (await call(b.url, 'GET', '/instances', undefined, { Authorization: basic('alice', 'wonder') })).body;
      expect(received).to.include.members(more.instances);
    });

    it('forwards store-straight bodies (with a length or chunked) and answers the peer\'s JSON', async () => {
      const file = makeInstance({ patientId: 'STRAIGHT' });
      const from = front.seen.length;
      const r = await call(a.url, 'POST', '/peers/b/store-straight', file);
      expect(r.status, r.text).to.equal(200);
      expect(r.body).to.include({ Status: 'Success' });
      expect(front.seen[from]!.headers['content-length']).to.equal(String(file.length));
      // A chunked upload is passed on chunked.
      const chunked = makeInstance({ patientId: 'STRAIGHT' });
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(`${a.url}/peers/b/store-straight`, { method: 'POST' }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.write(chunked.subarray(0, 100));
        req.end(chunked.subarray(100));
      });
      expect(answer.status, answer.body).to.equal(200);
      expect(JSON.parse(answer.body)).to.include({ Status: 'Success' });
      expect(front.seen.at(-1)!.headers['transfer-encoding']).to.equal('chunked');
      // The peer's refusal (not DICOM) is a clear error.
      const bad = await call(a.url, 'POST', '/peers/b/store-straight', 'not dicom');
      expect(bad.status).to.equal(500);
      expect(bad.body.Details).to.match(/^Cannot send DICOM to remote peer: b \(peer "b" answered HTTP 400/);
    });

    it('answers the peer\'s /system', async () => {
      const r = await call(a.url, 'GET', '/peers/b/system');
      expect(r.status).to.equal(200);
      expect(r.body).to.deep.equal((await call(b.url, 'GET', '/system', undefined, { Authorization: basic('alice', 'wonder') })).body);
    });
  });

  describe('jobs', () => {
    async function serve(storage: string, peerUrl: string) {
      const { config } = buildConfig({}, 'test', {
        StorageDirectory: storage,
        IndexDirectory: storage,
        SyncStorageArea: false,
        HttpPort: 0,
        HttpTimeout: 0,
        OrthancPeers: { held: [peerUrl, 'alice', 'wonder'] },
      });
      const ctx = await createContext(config);
      const app = buildHttpServer(ctx);
      const port = await startHttpServer(app, 0, '127.0.0.1');
      return { ctx, url: `http://127.0.0.1:${port}`, close: async () => (await app.close(), await ctx.close()) };
    }

    it('cancels a job whose request is in progress', async () => {
      const g = await forwarder(b.url, { hold: true });
      const server = await serve(join(dir, 'cancel'), g.url);
      try {
        const { instances } = await upload(server.url, [makeInstance({ patientId: 'CANCEL' })]);
        const r = await call(server.url, 'POST', '/peers/held/store', { Resources: instances, Synchronous: false });
        await waitFor(() => g.held.length === 1, 'the request to reach the peer');
        expect((await call(server.url, 'POST', `/jobs/${r.body.ID}/cancel`, '')).status).to.equal(200);
        await waitFor(async () => (await call(server.url, 'GET', `/jobs/${r.body.ID}`)).body.State === 'Failure', 'the job to stop');
        expect((await call(server.url, 'GET', `/jobs/${r.body.ID}`)).body.ErrorCode).to.equal(37); // CanceledJob
      } finally {
        await server.close();
        await g.close();
      }
    });

    it('resumes an interrupted job after a restart (SaveJobs)', async () => {
      const g = await forwarder(b.url, { hold: true });
      const storage = join(dir, 'restart');
      let server = await serve(storage, g.url);
      let jobId = '';
      let instances: string[] = [];
      try {
        ({ instances } = await upload(server.url, study(2, 'RESTART').files));
        const r = await call(server.url, 'POST', '/peers/held/store', { Resources: instances, Synchronous: false });
        jobId = r.body.ID;
        await waitFor(() => g.held.length === 1, 'the request to reach the peer');
      } finally {
        await server.close();
      }
      g.release();
      server = await serve(storage, g.url);
      try {
        let info: Answer['body'];
        await waitFor(async () => {
          info = (await call(server.url, 'GET', `/jobs/${jobId}`)).body;
          return info.State === 'Success' || info.State === 'Failure';
        }, 'the resumed job');
        expect(info.State, JSON.stringify(info)).to.equal('Success');
        expect(info.Content).to.include({ InstancesCount: 2, FailedInstancesCount: 0 });
        const received = (await call(b.url, 'GET', '/instances', undefined, { Authorization: basic('alice', 'wonder') })).body;
        expect(received).to.include.members(instances);
      } finally {
        await server.close();
        await g.close();
      }
    });
  });

  describe('over HTTPS with a CA and a client certificate', () => {
    let pki: string;
    let c: TestServer;
    let secure: TestServer;
    let rogue: https.Server;

    before(async function () {
      if (!HAS_OPENSSL) this.skip();
      pki = join(dir, 'pki');
      mkdirSync(pki);
      makePki(pki);
      writeFileSync(join(pki, 'https.pem'), readFileSync(join(pki, 'server.pem'), 'utf8') + readFileSync(join(pki, 'server.key'), 'utf8'));
      c = await tempServer({
        SslEnabled: true,
        SslCertificate: join(pki, 'https.pem'),
        SslVerifyPeers: true,
        SslTrustedClientCertificates: join(pki, 'ca.pem'),
      });
      rogue = https.createServer({ cert: readFileSync(join(pki, 'rogue.pem')), key: readFileSync(join(pki, 'rogue.key')) }, (_req, res) => res.end('{}'));
      await new Promise<void>((resolve) => rogue.listen(0, '127.0.0.1', resolve));
      const cPort = new URL(c.url).port;
      const rPort = (rogue.address() as { port: number }).port;
      secure = await tempServer({
        HttpsCACertificates: join(pki, 'ca.pem'),
        OrthancPeers: {
          c: { Url: `https://127.0.0.1:${cPort}/`, CertificateFile: join(pki, 'client.pem'), CertificateKeyFile: join(pki, 'client.key') },
          byname: { Url: `https://localhost:${cPort}/`, CertificateFile: join(pki, 'client.pem'), CertificateKeyFile: join(pki, 'client.key') },
          nocert: [`https://127.0.0.1:${cPort}/`],
          roguecert: { Url: `https://127.0.0.1:${cPort}/`, CertificateFile: join(pki, 'rogue.pem'), CertificateKeyFile: join(pki, 'rogue.key') },
          rogue: [`https://127.0.0.1:${rPort}/`],
        },
      });
    });

    after(async () => {
      await secure?.close();
      await c?.close();
      await new Promise<void>((resolve) => (rogue ? rogue.close(() => resolve()) : resolve()));
    });

    it('reaches a pacsnode with SslVerifyPeers through the CA bundle and the client certificate', async () => {
      const system = await call(secure.url, 'GET', '/peers/c/system');
      expect(system.status, system.text).to.equal(200);
      expect(system.body.Name).to.equal('pacsnode');
      expect((await call(secure.url, 'GET', '/peers/byname/system')).status).to.equal(200);
      const { instances } = await upload(secure.url, [makeInstance({ patientId: 'TLS' })]);
      const r = await call(secure.url, 'POST', '/peers/c/store', instances);
      expect(r.status, r.text).to.equal(200);
      expect(r.body).to.include({ InstancesCount: 1, FailedInstancesCount: 0 });
      expect(c.ctx.index.findByPublicId(instances[0]!)).to.not.equal(undefined);
    });

    it('fails clearly without a client certificate, with one of another CA, and towards a server of another CA', async () => {
      const nocert = await call(secure.url, 'GET', '/peers/nocert/system');
      expect(nocert.status).to.equal(500);
      expect(nocert.body.Details).to.match(/^peer "nocert": GET https:\/\/127\.0\.0\.1:\d+\/system: the peer requires a client certificate/);
      const refused = await call(secure.url, 'GET', '/peers/roguecert/system');
      expect(refused.status).to.equal(500);
      expect(refused.body.Details).to.match(/the peer refused our client certificate|does not trust our client certificate/);
      const rogueAnswer = await call(secure.url, 'GET', '/peers/rogue/system');
      expect(rogueAnswer.status).to.equal(500);
      expect(rogueAnswer.body.Details).to.include('the certificate of the peer is not trusted');
      expect(rogueAnswer.body.Details).to.include('HttpsCACertificates');
    });

    it('goes through HttpProxy: an http:// peer in absolute form, an https:// one in a CONNECT tunnel, with the proxy\'s credentials', async () => {
      const proxy = await forwarder('proxy');
      const cPort = new URL(c.url).port;
      const viaProxy = await tempServer({
        HttpProxy: `${proxy.url.replace('http://', 'http://user:p%40ss@')}`,
        HttpsCACertificates: join(pki, 'ca.pem'),
        OrthancPeers: {
          b: [front.url, 'alice', 'wonder'],
          c: { Url: `https://localhost:${cPort}/`, CertificateFile: join(pki, 'client.pem'), CertificateKeyFile: join(pki, 'client.key') },
        },
      });
      try {
        let r = await call(viaProxy.url, 'GET', '/peers/b/system');
        expect(r.status, r.text).to.equal(200);
        r = await call(viaProxy.url, 'GET', '/peers/c/system');
        expect(r.status, r.text).to.equal(200);
        expect(proxy.seen.map((s) => `${s.method} ${s.url}`)).to.deep.equal([`GET ${front.url}system`, `CONNECT localhost:${cPort}`]);
        for (const s of proxy.seen) expect(s.headers['proxy-authorization']).to.equal(basic('user', 'p@ss'));
        expect(proxy.seen[0]!.headers.authorization).to.equal(basic('alice', 'wonder'));
      } finally {
        await viaProxy.close();
        await proxy.close();
      }
    });
  });

  describe('with a real Orthanc 1.10, both ways', () => {
    let orthanc: Orthanc;

    before(async function () {
      if (!existsSync(ORTHANC_BINARY)) this.skip();
      orthanc = await startOrthanc(join(dir, 'orthanc'), 'HDORTHANC', {
        Name: 'pacsnode-rest-peers',
        HttpTimeout: 10,
        OrthancPeers: { pacsnode: { Url: `${a.url}/`, HttpHeaders: { 'X-From': 'orthanc' } } },
      });
      const r = await call(a.url, 'PUT', '/peers/orthanc', [`${orthanc.url}/`]);
      expect(r.status).to.equal(200);
    });

    after(async () => {
      await orthanc?.stop();
      await call(a.url, 'DELETE', '/peers/orthanc');
    });

    it('formats definitions as Orthanc does (PUT the same definitions to both, compare /configuration)', async () => {
      const certificate = join(dir, 'peer-cert.pem');
      writeFileSync(certificate, 'not read until used');
      const definitions: Record<string, object> = {
        short: ['http://short.invalid:8042'],
        creds: ['http://creds.invalid/', 'bob', 'pw'],
        long: { Url: 'https://long.invalid/o/', Username: 'u', Password: 'p', HttpHeaders: { 'X-A': '1', 'X-B': '2' }, Timeout: 9, Site: 'x', Flag: true },
        cert: { Url: 'https://cert.invalid/', CertificateFile: certificate, CertificateKeyFile: certificate, CertificateKeyPassword: 'k' },
      };
      try {
        for (const [name, definition] of Object.entries(definitions)) {
          const ours = await call(a.url, 'PUT', `/peers/cmp-${name}`, definition);
          const theirs = await call(orthanc.url, 'PUT', `/peers/cmp-${name}`, definition);
          expect([ours.status, ours.text], name).to.deep.equal([theirs.status, theirs.text]);
          const mine = (await call(a.url, 'GET', `/peers/cmp-${name}/configuration`)).body;
          expect(mine, name).to.deep.equal((await call(orthanc.url, 'GET', `/peers/cmp-${name}/configuration`)).body);
        }
        expect((await call(a.url, 'GET', '/peers/cmp-short')).body).to.deep.equal((await call(orthanc.url, 'GET', '/peers/cmp-short')).body);
        const bad = ['http://x/', 'user'];
        expect((await call(a.url, 'PUT', '/peers/cmp-bad', bad)).status).to.equal((await call(orthanc.url, 'PUT', '/peers/cmp-bad', bad)).status);
      } finally {
        for (const name of Object.keys(definitions)) {
          await call(a.url, 'DELETE', `/peers/cmp-${name}`);
          await call(orthanc.url, 'DELETE', `/peers/cmp-${name}`);
        }
      }
    });

    it('answers Orthanc\'s /system', async () => {
      const r = await call(a.url, 'GET', '/peers/orthanc/system');
      expect(r.status).to.equal(200);
      expect(r.body).to.include({ Name: 'pacsnode-rest-peers' });
    });

    it('sends a study to Orthanc, plain, compressed (gzip) and transcoded', async () => {
      let r = await call(a.url, 'POST', '/peers/orthanc/store', { Resources: [source.studyId] });
      expect(r.status, r.text).to.equal(200);
      expect(r.body).to.include({ InstancesCount: 3, FailedInstancesCount: 0, Compress: false });
      expect((await call(orthanc.url, 'GET', '/instances')).body).to.include.members(source.instances);
      await call(orthanc.url, 'DELETE', `/studies/${source.studyId}`);

      r = await call(a.url, 'POST', '/peers/orthanc/store', { Resources: [source.studyId], Compress: true });
      expect(r.status, r.text).to.equal(200);
      expect(r.body).to.include({ Compress: true, FailedInstancesCount: 0 });
      expect((await call(orthanc.url, 'GET', '/instances')).body).to.include.members(source.instances);
      await call(orthanc.url, 'DELETE', `/studies/${source.studyId}`);

      r = await call(a.url, 'POST', '/peers/orthanc/store', { Resources: [source.instances[0]], Transcode: ImplicitVRLittleEndian });
      expect(r.status, r.text).to.equal(200);
      expect(r.body).to.include({ Transcode: ImplicitVRLittleEndian });
      const ts = await call(orthanc.url, 'GET', `/instances/${source.instances[0]}/metadata/TransferSyntax`);
      expect(ts.text).to.equal(ImplicitVRLittleEndian);
    });

    it('receives what Orthanc sends through its own /peers/{id}/store', async () => {
      const files = study(2, 'FROMORTHANC').files;
      const stored = await upload(orthanc.url, files);
      const r = await call(orthanc.url, 'POST', '/peers/pacsnode/store', { Resources: [stored.studyId] });
      expect(r.status, `${r.text}\n${orthanc.log().slice(-2000)}`).to.equal(200);
      expect(r.body).to.include({ InstancesCount: 2, FailedInstancesCount: 0 });
      for (const id of stored.instances) expect(a.ctx.index.findByPublicId(id), id).to.not.equal(undefined);
      // And its store-straight.
      const straight = await call(orthanc.url, 'POST', '/peers/pacsnode/store-straight', makeInstance({ patientId: 'FROMORTHANC' }));
      expect(straight.status, straight.text).to.equal(200);
      expect(straight.body.Status).to.equal('Success');
    });
  });
});
