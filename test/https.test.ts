/**
 * The REST API's own HTTPS (Orthanc's `Ssl*` keys) and the HTTP server options (`KeepAlive`, `KeepAliveTimeout`,
 * `HttpCompressionEnabled`, `HttpDescribeErrors`, `HttpRequestTimeout`, `MaximumHttpBodySize`), with real clients:
 * node's https/http and `curl`, against `buildHttpServer` and once through `pacsnode serve`.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent, request as httpsRequest, type RequestOptions } from 'node:https';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, inflateSync } from 'node:zlib';
import type { Config } from '../src/config/schema.js';
import { ConfigError } from '../src/core/errors.js';
import { parseCertificates, validityWarning } from '../src/core/tls-files.js';
import { buildHttpServer, startHttpServer, type HttpServer } from '../src/rest/http-server.js';
import { httpsMinimumVersion, loadHttps, type HttpsConfig } from '../src/rest/https.js';
import { freePort, waitForPort } from './helpers/interop.js';
import { HAS_OPENSSL, makePki } from './helpers/pki.js';
import { startServer } from './helpers/process.js';
import { tempContext, type TestContext } from './helpers/context.js';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

function collect(res: import('node:http').IncomingMessage): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    res.on('error', reject);
  });
}

/** One HTTPS request with node's client; `body` is sent as it is (chunked when `headers` has no length). */
function httpsGet(url: string, options: RequestOptions & { body?: Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, options, (res) => collect(res).then(resolve, reject));
    req.on('error', reject);
    req.end(options.body);
  });
}

function curl(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn('curl', ['--silent', '--show-error', '--max-time', '20', ...args]);
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).to.be.instanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('no ConfigError thrown');
}

describe('HTTPS and the HTTP server options', function () {
  let pki: string;
  let ca: Buffer;
  /** Orthanc's format: the server's certificate and its private key in one PEM file. */
  let bundle: string;

  before(function () {
    if (!HAS_OPENSSL) this.skip(); // no X.509 without openssl
    pki = mkdtempSync(join(tmpdir(), 'hb-pki-'));
    makePki(pki);
    ca = readFileSync(join(pki, 'ca.pem'));
    bundle = join(pki, 'https.pem');
    writeFileSync(bundle, Buffer.concat([readFileSync(join(pki, 'server.pem')), readFileSync(join(pki, 'server.key'))]));
  });

  after(() => {
    if (pki) rmSync(pki, { recursive: true, force: true });
  });

  const base = (over: Partial<HttpsConfig> = {}): HttpsConfig => ({
    SslEnabled: true,
    SslCertificate: bundle,
    SslMinimumProtocolVersion: 4,
    SslVerifyPeers: false,
    ...over,
  });

  describe('loading the files (loadHttps)', () => {
    it("maps Orthanc's SslMinimumProtocolVersion (civetweb's scale) to TLS versions", () => {
      expect([0, 1, 2, 3, 4, 5].map(httpsMinimumVersion)).to.deep.equal(['TLSv1', 'TLSv1', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3']);
      expect(() => httpsMinimumVersion(6)).to.throw(RangeError, 'SslMinimumProtocolVersion 6 is not 0..5');
    });

    it('accepts the certificate and its key in one file, in either order', () => {
      const keyFirst = join(pki, 'key-first.pem');
      writeFileSync(keyFirst, Buffer.concat([readFileSync(join(pki, 'server.key')), readFileSync(join(pki, 'server.pem'))]));
      for (const file of [bundle, keyFirst]) {
        const https = loadHttps(base({ SslCertificate: file }));
        expect(https.options.minVersion).to.equal('TLSv1.2');
        expect(https.options.requestCert).to.equal(undefined);
        expect(https.warnings).to.deep.equal([]);
      }
    });

    it('refuses a missing, unreadable or incomplete SslCertificate, naming the key and the file', () => {
      const missing = join(pki, 'missing.pem');
      expect(configError(() => loadHttps(base({ SslCertificate: missing })))).to.match(
        new RegExp(`^SslCertificate: cannot read ${missing} \\(ENOENT`),
      );
      const certOnly = join(pki, 'server.pem');
      expect(configError(() => loadHttps(base({ SslCertificate: certOnly })))).to.contain(`SslCertificate: ${certOnly} holds no private key`);
      const garbage = join(pki, 'garbage.pem');
      expect(configError(() => loadHttps(base({ SslCertificate: garbage })))).to.equal(
        `SslCertificate: ${garbage} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`,
      );
      const mismatch = join(pki, 'mismatch.pem');
      writeFileSync(mismatch, Buffer.concat([readFileSync(join(pki, 'server.pem')), readFileSync(join(pki, 'client.key'))]));
      expect(configError(() => loadHttps(base({ SslCertificate: mismatch })))).to.contain(
        `SslCertificate: the private key in ${mismatch} is not the key of its first certificate (CN=server)`,
      );
      const encrypted = join(pki, 'encrypted-bundle.pem');
      writeFileSync(encrypted, Buffer.concat([readFileSync(join(pki, 'client.pem')), readFileSync(join(pki, 'encrypted.key'))]));
      expect(configError(() => loadHttps(base({ SslCertificate: encrypted })))).to.contain(`SslCertificate: ${encrypted} is encrypted`);
      expect(configError(() => loadHttps(base({ SslCertificate: undefined })))).to.contain('SslCertificate must be set when SslEnabled is true');
    });

    it('puts the CA chain after the certificate: a chain given first is explained', () => {
      const reversed = join(pki, 'reversed.pem');
      writeFileSync(reversed, Buffer.concat([ca, readFileSync(join(pki, 'server.pem')), readFileSync(join(pki, 'server.key'))]));
      expect(configError(() => loadHttps(base({ SslCertificate: reversed })))).to.contain(
        "it is the key of certificate 2: put the server's certificate first, then its CA chain",
      );
      const chained = join(pki, 'chained.pem');
      writeFileSync(chained, Buffer.concat([readFileSync(join(pki, 'server.pem')), ca, readFileSync(join(pki, 'server.key'))]));
      expect(String(loadHttps(base({ SslCertificate: chained })).options.cert).match(/BEGIN CERTIFICATE/g)).to.have.length(2);
    });

    it('warns about a certificate outside its validity period (clients will refuse it)', () => {
      const [certificate] = parseCertificates('SslCertificate', bundle, readFileSync(bundle));
      const validTo = Date.parse(certificate!.validTo);
      const validFrom = Date.parse(certificate!.validFrom);
      expect(validityWarning('SslCertificate', bundle, certificate!, validTo + 1000)).to.equal(
        `SslCertificate: the certificate in ${bundle} (CN=server) expired on ${certificate!.validTo}`,
      );
      expect(validityWarning('SslCertificate', bundle, certificate!, validFrom - 1000)).to.equal(
        `SslCertificate: the certificate in ${bundle} (CN=server) is not valid before ${certificate!.validFrom}`,
      );
      expect(validityWarning('SslCertificate', bundle, certificate!, validFrom + 1000)).to.equal(undefined);
    });

    it('needs SslTrustedClientCertificates with SslVerifyPeers, and checks it', () => {
      expect(configError(() => loadHttps(base({ SslVerifyPeers: true })))).to.contain('SslTrustedClientCertificates must be set when SslVerifyPeers is true');
      const garbage = join(pki, 'garbage.pem');
      expect(configError(() => loadHttps(base({ SslVerifyPeers: true, SslTrustedClientCertificates: garbage })))).to.equal(
        `SslTrustedClientCertificates: ${garbage} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`,
      );
      const https = loadHttps(base({ SslVerifyPeers: true, SslTrustedClientCertificates: join(pki, 'ca.pem') }));
      expect(https.options).to.include({ requestCert: true, rejectUnauthorized: true });
      expect(https.description).to.equal('HTTPS (TLSv1.2 and above, client certificates required)');
    });

    it('checks SslCiphersAccepted against OpenSSL: unknown names are warnings, none known is an error', () => {
      const https = loadHttps(base({ SslCiphersAccepted: ['ECDHE-RSA-AES128-GCM-SHA256', 'NO-SUCH-CIPHER', '!aNULL'] }));
      expect(https.options.ciphers).to.equal('ECDHE-RSA-AES128-GCM-SHA256:!aNULL');
      expect(https.warnings).to.deep.equal([`SslCiphersAccepted: "NO-SUCH-CIPHER" is not a cipher OpenSSL ${process.versions.openssl} knows; ignored`]);
      expect(configError(() => loadHttps(base({ SslCiphersAccepted: ['NOPE', '!aNULL'] })))).to.contain(
        'SslCiphersAccepted: none of "NOPE", "!aNULL" is a cipher',
      );
    });
  });

  describe('HTTPS server (buildHttpServer)', () => {
    let t: TestContext | undefined;
    let http: HttpServer | undefined;

    async function start(overrides: Partial<Config>): Promise<string> {
      t = await tempContext({ SslEnabled: true, SslCertificate: bundle, ...overrides });
      http = buildHttpServer(t.ctx);
      const port = await startHttpServer(http, 0, '127.0.0.1');
      return `https://127.0.0.1:${port}`;
    }

    afterEach(async () => {
      await http?.close();
      await t?.close();
      http = undefined;
      t = undefined;
    });

    it('answers node https and curl clients that trust the CA, and no client that does not', async () => {
      const url = await start({});
      const node = await httpsGet(`${url}/system`, { ca });
      expect(node.status).to.equal(200);
      expect(JSON.parse(node.body.toString())).to.have.property('ApiVersion');
      const ok = await curl(['--cacert', join(pki, 'ca.pem'), '-w', '\n%{http_code}', `${url}/system`]);
      expect(ok.code, ok.err).to.equal(0);
      expect(ok.out.trim().split('\n').pop()).to.equal('200');
      const untrusted = await curl([`${url}/system`]);
      expect(untrusted.code).to.equal(60); // CURLE_PEER_FAILED_VERIFICATION
      const wrongCa = await curl(['--cacert', join(pki, 'other.pem'), `${url}/system`]);
      expect(wrongCa.code).to.equal(60);
    });

    it('closes a plain-HTTP connection cleanly and keeps serving HTTPS', async () => {
      const url = await start({});
      const plain = await curl([`${url.replace('https:', 'http:')}/system`]);
      expect(plain.code).to.be.oneOf([52, 56]); // empty reply / connection reset: no HTTP answer over a TLS port
      const garbage = await new Promise<string>((resolve) => {
        const socket = netConnect(Number(new URL(url).port), '127.0.0.1', () => socket.write('\x16\x03\x01\x00\x05hello-not-tls'));
        socket.on('error', (e) => resolve(`error ${e.message}`));
        socket.on('close', () => resolve('closed'));
        socket.resume();
      });
      expect(garbage).to.match(/^(closed|error)/);
      const after = await httpsGet(`${url}/system`, { ca });
      expect(after.status).to.equal(200);
    });

    it('with SslVerifyPeers, serves clients whose certificate chains to SslTrustedClientCertificates, and refuses others', async () => {
      const url = await start({ SslVerifyPeers: true, SslTrustedClientCertificates: join(pki, 'ca.pem') });
      const cert = readFileSync(join(pki, 'client.pem'));
      const key = readFileSync(join(pki, 'client.key'));
      expect((await httpsGet(`${url}/system`, { ca, cert, key })).status).to.equal(200);
      const ok = await curl(['--cacert', join(pki, 'ca.pem'), '--cert', join(pki, 'client.pem'), '--key', join(pki, 'client.key'), '-o', '/dev/null', '-w', '%{http_code}', `${url}/statistics`]);
      expect(ok.out, ok.err).to.equal('200');

      const rogue = await curl(['--cacert', join(pki, 'ca.pem'), '--cert', join(pki, 'rogue.pem'), '--key', join(pki, 'rogue.key'), `${url}/system`]);
      // Refused in the handshake (35); with TLS 1.3 the client learns it only after sending its request (52 / 56).
      expect(rogue.code, rogue.err).to.be.oneOf([35, 52, 56]);
      expect(rogue.out).to.equal('');
      const none = await curl(['--cacert', join(pki, 'ca.pem'), `${url}/system`]);
      expect(none.code, none.err).to.be.oneOf([35, 52, 56]);
      expect(none.out).to.equal('');
      let refused: unknown;
      try {
        await httpsGet(`${url}/system`, { ca, cert: readFileSync(join(pki, 'rogue.pem')), key: readFileSync(join(pki, 'rogue.key')) });
      } catch (e) {
        refused = e;
      }
      expect(refused).to.be.instanceOf(Error);
      expect((refused as NodeJS.ErrnoException).code).to.match(/^(ECONNRESET|EPIPE|ERR_SSL_)/);
      expect((await httpsGet(`${url}/system`, { ca, cert, key })).status).to.equal(200);
    });

    it('applies HTTP Basic authentication on top of client certificates', async () => {
      const url = await start({
        SslVerifyPeers: true,
        SslTrustedClientCertificates: join(pki, 'ca.pem'),
        AuthenticationEnabled: true,
        RegisteredUsers: { alice: 's3cret' },
      });
      const tls = { ca, cert: readFileSync(join(pki, 'client.pem')), key: readFileSync(join(pki, 'client.key')) };
      const anonymous = await httpsGet(`${url}/system`, tls);
      expect(anonymous.status).to.equal(401);
      expect(anonymous.headers['www-authenticate']).to.match(/^Basic realm=/);
      expect((await httpsGet(`${url}/system`, { ...tls, auth: 'alice:s3cret' })).status).to.equal(200);
    });

    it('applies SslMinimumProtocolVersion and SslCiphersAccepted', async () => {
      const url = await start({ SslMinimumProtocolVersion: 5 });
      const tls12 = await curl(['--cacert', join(pki, 'ca.pem'), '--tls-max', '1.2', `${url}/system`]);
      expect(tls12.code).to.equal(35);
      const tls13 = await curl(['--cacert', join(pki, 'ca.pem'), '--tlsv1.3', '-o', '/dev/null', '-w', '%{http_code}', `${url}/system`]);
      expect(tls13.out, tls13.err).to.equal('200');
      await http!.close();
      await t!.close();

      const url2 = await start({ SslCiphersAccepted: ['ECDHE-RSA-AES128-GCM-SHA256'] });
      const agent = new Agent({ ca, maxVersion: 'TLSv1.2', keepAlive: false });
      const socketCipher = await new Promise<string>((resolve, reject) => {
        const req = httpsRequest(`${url2}/system`, { agent }, (res) => {
          const cipher = (res.socket as import('node:tls').TLSSocket).getCipher().standardName;
          res.resume();
          res.on('end', () => resolve(cipher));
        });
        req.on('error', reject);
        req.end();
      });
      expect(socketCipher).to.equal('TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256');
      const other = await curl(['--cacert', join(pki, 'ca.pem'), '--tls-max', '1.2', '--ciphers', 'ECDHE-RSA-AES256-GCM-SHA384', `${url2}/system`]);
      expect(other.code).to.equal(35);
    });

    it('offers TLS 1.1 when SslMinimumProtocolVersion is 3, and not TLS 1.0', async () => {
      const url = await start({ SslMinimumProtocolVersion: 3 });
      // OpenSSL 3 clients, too, need security level 0 for TLS 1.1.
      const legacy = { ca, ciphers: 'DEFAULT:@SECLEVEL=0', agent: false as const };
      const tls11 = await httpsGet(`${url}/system`, { ...legacy, minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1' });
      expect(tls11.status).to.equal(200);
      let refused: unknown;
      try {
        await httpsGet(`${url}/system`, { ...legacy, minVersion: 'TLSv1', maxVersion: 'TLSv1' });
      } catch (e) {
        refused = e;
      }
      expect((refused as NodeJS.ErrnoException | undefined)?.code).to.match(/^(EPROTO|ERR_SSL_)/);
    });

    it('applies MaximumHttpBodySize over HTTPS, declared or chunked, and keeps serving', async () => {
      const url = await start({ MaximumHttpBodySize: 1 });
      const big = Buffer.alloc(1024 * 1024 + 1, 0x41);
      const declared = await httpsGet(`${url}/instances`, { ca, method: 'POST', headers: { 'Content-Length': big.length }, body: big });
      expect(declared.status).to.equal(413);
      expect(JSON.parse(declared.body.toString())).to.include({ HttpStatus: 413, Method: 'POST' });
      const chunked = await httpsGet(`${url}/instances`, { ca, method: 'POST', headers: { 'Transfer-Encoding': 'chunked' }, body: big });
      expect(chunked.status).to.equal(413);
      expect((await httpsGet(`${url}/statistics`, { ca })).status).to.equal(200);
    });
  });

  describe('HTTP options', () => {
    let t: TestContext | undefined;
    let http: HttpServer | undefined;

    async function start(overrides: Partial<Config>): Promise<number> {
      t = await tempContext(overrides);
      http = buildHttpServer(t.ctx);
      return startHttpServer(http, 0, '127.0.0.1');
    }

    afterEach(async () => {
      await http?.close();
      await t?.close();
      http = undefined;
      t = undefined;
    });

    function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Answer & { socketReused: boolean }> {
      return new Promise((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path, headers, agent: false }, (res) =>
          collect(res).then((a) => resolve({ ...a, socketReused: req.reusedSocket }), reject),
        );
        req.on('error', reject);
        req.end();
      });
    }

    /**
     * Sends a request on a raw TCP connection and, once its answer is in, a second one on the same connection;
     * resolves when the server closes it, with everything received and the number of answers.
     */
    function twoOnOneConnection(port: number): Promise<{ text: string; answers: number }> {
      return new Promise((resolve) => {
        const socket = netConnect(port, '127.0.0.1');
        let text = '';
        let askedAgain = false;
        socket.on('data', (d: Buffer) => {
          text += d.toString('latin1');
          if (!askedAgain && text.includes('"ApiVersion"')) {
            askedAgain = true;
            if (socket.writable) socket.write('GET /system HTTP/1.1\r\nHost: x\r\n\r\n');
          }
        });
        // A write racing the server's close may fail (EPIPE): what was received is what counts.
        socket.on('error', () => socket.destroy());
        socket.on('close', () => resolve({ text, answers: (text.match(/HTTP\/1\.1 200/g) ?? []).length }));
        socket.setTimeout(10000, () => socket.destroy());
        socket.write('GET /system HTTP/1.1\r\nHost: x\r\n\r\n');
      });
    }

    it('keeps connections alive by default, announcing a 5 s KeepAliveTimeout (and 1 s when configured)', async () => {
      const port = await start({});
      const r = await twoOnOneConnection(port);
      expect(r.answers).to.equal(2);
      expect(r.text).to.match(/keep-alive: timeout=5/i);
      const one = await twoOnOneConnection(await start({ KeepAliveTimeout: 1 }));
      expect(one.answers).to.equal(2);
      expect(one.text).to.match(/keep-alive: timeout=1/i);
    });

    it('closes each connection after its answer with KeepAlive false (and with KeepAliveTimeout 0)', async () => {
      for (const over of [{ KeepAlive: false }, { KeepAliveTimeout: 0 }]) {
        const port = await start(over);
        const r = await twoOnOneConnection(port);
        expect(r.answers, JSON.stringify(over)).to.equal(1);
        expect(r.text).to.match(/connection: close/i);
        await http!.close();
        await t!.close();
        http = undefined;
        t = undefined;
      }
    });

    it('compresses JSON answers with gzip or deflate when HttpCompressionEnabled, only for clients that accept it', async () => {
      const port = await start({ HttpCompressionEnabled: true });
      const plain = await get(port, '/system');
      expect(plain.headers['content-encoding']).to.equal(undefined);
      const gz = await get(port, '/system', { 'Accept-Encoding': 'gzip, deflate' });
      expect(gz.headers['content-encoding']).to.equal('gzip');
      expect(gz.headers.vary).to.contain('Accept-Encoding');
      expect(JSON.parse(gunzipSync(gz.body).toString())).to.deep.equal(JSON.parse(plain.body.toString()));
      const df = await get(port, '/system', { 'Accept-Encoding': 'deflate, gzip;q=0' });
      expect(df.headers['content-encoding']).to.equal('deflate');
      expect(JSON.parse(inflateSync(df.body).toString())).to.deep.equal(JSON.parse(plain.body.toString()));
      const error = await get(port, '/nothing-here', { 'Accept-Encoding': 'gzip' });
      expect(error.status).to.equal(404);
      expect(JSON.parse(gunzipSync(error.body).toString())).to.include({ HttpStatus: 404 });
      const viaCurl = await curl(['--compressed', '-D', '-', `http://127.0.0.1:${port}/system`]);
      expect(viaCurl.out).to.match(/content-encoding: gzip/i);
      expect(viaCurl.out).to.contain('"ApiVersion"');
    });

    it("does not compress by default (Orthanc 1.12.2+'s default)", async () => {
      const port = await start({});
      const r = await get(port, '/system', { 'Accept-Encoding': 'gzip' });
      expect(r.headers['content-encoding']).to.equal(undefined);
      expect(JSON.parse(r.body.toString())).to.have.property('ApiVersion');
    });

    it('answers errors with the status code alone when HttpDescribeErrors is false', async () => {
      const port = await start({ HttpDescribeErrors: false });
      const r = await get(port, '/instances/nope');
      expect(r.status).to.equal(404);
      expect(r.body.length).to.equal(0);
      await http!.close();
      await t!.close();
      const port2 = await start({});
      const described = await get(port2, '/instances/nope');
      expect(described.status).to.equal(404);
      expect(JSON.parse(described.body.toString())).to.include({ HttpStatus: 404, Method: 'GET' });
    });

    it('closes a connection whose request stalls for HttpRequestTimeout, and keeps serving', async () => {
      const port = await start({ HttpRequestTimeout: 1 });
      const outcome = await new Promise<string>((resolve) => {
        const socket = netConnect(port, '127.0.0.1', () => {
          // The headers announce 100 bytes; only 10 come.
          socket.write('POST /instances HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789');
        });
        let text = '';
        socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
        socket.on('error', () => resolve(`error:${text}`));
        socket.on('close', () => resolve(`closed:${text}`));
      });
      expect(outcome).to.match(/^(closed|error):/);
      expect((await get(port, '/statistics')).status).to.equal(200);
    });
  });

  describe('the same HTTP options on a real Orthanc 1.10', function () {
    // Orthanc 1.10's Debian build crashes on every HTTPS request (civetweb against OpenSSL 3), so only the plain
    // HTTP options are compared: the same configuration on both servers, the same requests, the same answers.
    const ORTHANC = '/usr/sbin/Orthanc';
    let dir: string;

    before(function () {
      if (!existsSync(ORTHANC)) this.skip(); // the orthanc package is installed by .ci/run
      dir = mkdtempSync(join(tmpdir(), 'hb-orthanc-'));
    });

    after(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    async function withOrthanc(options: Partial<Config>, body: (port: number) => Promise<void>): Promise<void> {
      const port = await freePort();
      const storage = mkdtempSync(join(dir, 'db-'));
      const file = join(storage, 'orthanc.json');
      const config = { HttpPort: port, DicomServerEnabled: false, StorageDirectory: storage, Plugins: [], WebDavEnabled: false, ...options };
      writeFileSync(file, JSON.stringify(config));
      const child = spawn(ORTHANC, [file], { stdio: 'ignore' });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      try {
        await waitForPort(port);
        await body(port);
      } finally {
        child.kill('SIGTERM');
        await exited;
      }
    }

    async function withPacsnode(options: Partial<Config>, body: (port: number) => Promise<void>): Promise<void> {
      const t = await tempContext(options);
      const http = buildHttpServer(t.ctx);
      try {
        await body(await startHttpServer(http, 0, '127.0.0.1'));
      } finally {
        await http.close();
        await t.close();
      }
    }

    /** What matters of an answer here: status, empty body or not, encoding and connection headers. */
    async function probe(port: number): Promise<unknown[]> {
      const agent = new HttpAgent({ keepAlive: true });
      const ask = (method: string, path: string, headers: Record<string, string>, body?: string) =>
        new Promise<unknown>((resolve, reject) => {
          const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent }, (res) =>
            collect(res).then((a) => {
              resolve({
                request: `${method} ${path} ${JSON.stringify(headers)}`,
                status: a.status,
                emptyBody: a.body.length === 0,
                encoding: a.headers['content-encoding'],
                connection: a.headers.connection,
                keepAlive: a.headers['keep-alive'],
              });
            }, reject),
          );
          req.on('error', reject);
          req.end(body);
        });
      try {
        return [
          await ask('GET', '/system', { 'Accept-Encoding': 'gzip' }),
          await ask('GET', '/statistics', { 'Accept-Encoding': 'deflate' }),
          await ask('POST', '/tools/find', {}, 'not json'),
          await ask('GET', '/patients/0000', { 'Accept-Encoding': 'gzip' }),
        ];
      } finally {
        agent.destroy();
      }
    }

    for (const options of [
      { HttpCompressionEnabled: false },
      { HttpCompressionEnabled: true, HttpDescribeErrors: false, KeepAlive: false },
    ] satisfies Array<Partial<Config>>) {
      it(`answers as Orthanc with ${JSON.stringify(options)}`, async () => {
        let orthanc: unknown[] = [];
        let ours: unknown[] = [];
        await withOrthanc(options, async (port) => {
          orthanc = await probe(port);
        });
        // Orthanc 1.10's keep-alive timeout is fixed at 1 s; pacsnode's default is 5 s (docs/configuration.md).
        await withPacsnode({ ...options, KeepAliveTimeout: 1 }, async (port) => {
          ours = await probe(port);
        });
        // Orthanc 1.10 answers an unknown resource with an empty 404 even when describing errors (rest-api.md).
        if (options.HttpDescribeErrors !== false) (orthanc[3] as { emptyBody: boolean }).emptyBody = false;
        expect(ours).to.deep.equal(orthanc);
      });
    }
  });

  describe('pacsnode serve with SslEnabled', function () {
    let dir: string;

    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'hb-serve-'));
    });

    afterEach(() => {
      rmSync(dir, { recursive: true, force: true });
    });

    it("serves HTTPS only, with Orthanc's default certificate.pem next to the configuration file", async () => {
      writeFileSync(join(dir, 'certificate.pem'), readFileSync(bundle));
      writeFileSync(join(dir, 'trustedCertificates.pem'), ca);
      const config = join(dir, 'orthanc.json');
      writeFileSync(
        config,
        JSON.stringify({ HttpPort: 0, DicomServerEnabled: false, StorageDirectory: 'db', SslEnabled: true, SslVerifyPeers: true }),
      );
      const server = await startServer(config);
      try {
        const url = `https://127.0.0.1:${server.port}`;
        const ok = await curl(['--cacert', join(pki, 'ca.pem'), '--cert', join(pki, 'client.pem'), '--key', join(pki, 'client.key'), `${url}/system`]);
        expect(ok.code, ok.err).to.equal(0);
        expect(JSON.parse(ok.out)).to.have.property('ApiVersion');
        const plain = await curl([`http://127.0.0.1:${server.port}/system`]);
        expect(plain.code).to.be.oneOf([52, 56]);
        const noCert = await curl(['--cacert', join(pki, 'ca.pem'), `${url}/system`]);
        expect(noCert.code).to.be.oneOf([35, 52, 56]);
        const again = await curl(['--cacert', join(pki, 'ca.pem'), '--cert', join(pki, 'client.pem'), '--key', join(pki, 'client.key'), '-o', '/dev/null', '-w', '%{http_code}', `${url}/statistics`]);
        expect(again.out).to.equal('200');
      } finally {
        server.child.kill('SIGTERM');
        await server.exited;
      }
    });

    it('does not start with a missing certificate file: exit 2, naming the key and the path', async () => {
      const config = join(dir, 'orthanc.json');
      writeFileSync(config, JSON.stringify({ HttpPort: 0, DicomServerEnabled: false, StorageDirectory: 'db', SslEnabled: true }));
      let failure = '';
      try {
        const server = await startServer(config);
        server.child.kill('SIGTERM');
      } catch (e) {
        failure = (e as Error).message;
      }
      expect(failure).to.contain('server exited early (code 2');
      expect(failure).to.contain(`configuration error: SslCertificate: cannot read ${join(dir, 'certificate.pem')}`);
    });
  });
});
