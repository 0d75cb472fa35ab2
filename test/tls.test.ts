/**
 * DICOM over TLS (net/tls.ts) with Orthanc's keys: a throwaway PKI made by `openssl` in a temp folder (two CAs,
 * leaves signed by each), pacsnode's DICOM server with TLS against DCMTK's echoscu (+tls), our own requestor against
 * pacsnode and against DCMTK's storescp (+tls), the protocol floor, the start-up checks of the files, and
 * `pacsnode serve` with a TLS configuration.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type SecureVersion } from 'node:tls';
import { createDicomHandlers } from '../src/app/dicom-handlers.js';
import { ConfigError } from '../src/core/errors.js';
import { SopClasses } from '../src/dicom/uids.js';
import { DicomScpServer } from '../src/dimse/scp/server.js';
import { cEcho, echo } from '../src/dimse/scu/echo.js';
import { move } from '../src/dimse/scu/move.js';
import { ScuSession } from '../src/dimse/scu/session.js';
import { AssociationError } from '../src/net/association.js';
import { openAssociation } from '../src/net/connect.js';
import { loadDicomTls, minimumTlsVersion, tlsTransport, type DicomTls, type DicomTlsConfig } from '../src/net/tls.js';
import { makeInstance } from './helpers/factory.js';
import { HAS_OPENSSL, makePki } from './helpers/pki.js';
import { startServer } from './helpers/process.js';
import { tempContext, type TestContext } from './helpers/context.js';
import { freePort, run, waitForPort } from './helpers/interop.js';

const HAS_DCMTK = existsSync('/usr/bin/echoscu') && existsSync('/usr/bin/storescp');

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e, (e as Error).stack).to.be.instanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError');
}

/** A TLS handshake alone (no DICOM) with the given protocol range: resolves with the protocol agreed, or the error. */
function handshake(port: number, pki: string, minVersion: SecureVersion, maxVersion: SecureVersion): Promise<string> {
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      minVersion,
      maxVersion,
      ca: readPem(pki, 'ca.pem'),
      cert: readPem(pki, 'client.pem'),
      key: readPem(pki, 'client.key'),
      ciphers: 'DEFAULT:@SECLEVEL=0',
    });
    socket.once('secureConnect', () => {
      resolve(socket.getProtocol() ?? '?');
      socket.destroy();
    });
    socket.once('error', (e) => resolve(`error: ${e.message}`));
  });
}

function readPem(dir: string, name: string): Buffer {
  return readFileSync(join(dir, name));
}

describe('DICOM TLS', function () {
  this.timeout(60000);
  let pki: string;
  const file = (name: string) => join(pki, name);
  /** The server's configuration (Orthanc's keys) in the PKI folder. */
  const serverConfig = (extra: Partial<DicomTlsConfig> = {}): DicomTlsConfig => ({
    DicomTlsCertificate: file('server.pem'),
    DicomTlsPrivateKey: file('server.key'),
    DicomTlsTrustedCertificates: file('ca.pem'),
    DicomTlsRemoteCertificateRequired: true,
    DicomTlsMinimumProtocolVersion: 0,
    ...extra,
  });
  const clientTls = (extra: Partial<DicomTlsConfig> = {}): DicomTls =>
    loadDicomTls(serverConfig({ DicomTlsCertificate: file('client.pem'), DicomTlsPrivateKey: file('client.key'), ...extra }), 'requestor');
  const target = (port: number, tls: DicomTls) => ({ host: '127.0.0.1', port, callingAet: 'PACSNODE_SCU', calledAet: 'PACSNODE', tls });

  before(function () {
    if (!HAS_OPENSSL) this.skip(); // no X.509 without openssl (node's crypto makes keys, not certificates)
    pki = mkdtempSync(join(tmpdir(), 'pacsnode-pki-'));
    makePki(pki);
  });
  after(() => {
    if (pki) rmSync(pki, { recursive: true, force: true });
  });

  describe('loadDicomTls: the files are checked at start-up', () => {
    it('loads a server certificate, its key and the trusted bundle', () => {
      const tls = loadDicomTls(serverConfig(), 'acceptor');
      expect(tls.certificate!.toString()).to.contain('BEGIN CERTIFICATE');
      expect(tls.privateKey!.toString()).to.contain('PRIVATE KEY');
      expect(tls.trustedCertificates!.toString()).to.contain('BEGIN CERTIFICATE');
      expect(tls.remoteCertificateRequired).to.equal(true);
    });

    it('names the key and the path of a file that cannot be read', () => {
      const missing = file('missing.pem');
      expect(configError(() => loadDicomTls(serverConfig({ DicomTlsCertificate: missing }), 'acceptor'))).to.match(
        new RegExp(`^DicomTlsCertificate: cannot read ${missing} \\(ENOENT`),
      );
      expect(configError(() => loadDicomTls(serverConfig({ DicomTlsTrustedCertificates: missing }), 'acceptor'))).to.match(
        /^DicomTlsTrustedCertificates: cannot read .*missing\.pem/,
      );
      expect(configError(() => loadDicomTls(serverConfig({ DicomTlsPrivateKey: missing }), 'acceptor'))).to.match(
        /^DicomTlsPrivateKey: cannot read .*missing\.pem/,
      );
    });

    it('refuses files that are not what the key expects', () => {
      expect(configError(() => loadDicomTls(serverConfig({ DicomTlsCertificate: file('garbage.pem') }), 'acceptor'))).to.equal(
        `DicomTlsCertificate: ${file('garbage.pem')} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`,
      );
      expect(configError(() => loadDicomTls(serverConfig({ DicomTlsTrustedCertificates: file('server.key') }), 'acceptor'))).to.contain(
        'DicomTlsTrustedCertificates: ',
      );
      expect(configError(() => loadDicomTls(serverConfig({ DicomTlsPrivateKey: file('garbage.pem') }), 'acceptor'))).to.match(
        /^DicomTlsPrivateKey: .*garbage\.pem is not a PEM private key/,
      );
    });

    it('refuses a key that is not the certificate\'s, and an encrypted key', () => {
      expect(configError(() => loadDicomTls(serverConfig({ DicomTlsPrivateKey: file('client.key') }), 'acceptor'))).to.equal(
        `DicomTlsPrivateKey: ${file('client.key')} is not the private key of the certificate in ${file('server.pem')}`,
      );
      expect(configError(() => loadDicomTls(serverConfig({ DicomTlsPrivateKey: file('encrypted.key') }), 'acceptor'))).to.contain(
        'is encrypted',
      );
    });

    it('needs a certificate for a server, and the trusted certificates when client certificates are required', () => {
      expect(configError(() => loadDicomTls(serverConfig({ DicomTlsCertificate: undefined }), 'acceptor'))).to.match(/^DicomTlsCertificate must be set/);
      expect(configError(() => loadDicomTls(serverConfig({ DicomTlsTrustedCertificates: undefined }), 'acceptor'))).to.match(
        /^DicomTlsTrustedCertificates must be set when DicomTlsRemoteCertificateRequired is true/,
      );
      const optional = loadDicomTls(serverConfig({ DicomTlsTrustedCertificates: undefined, DicomTlsRemoteCertificateRequired: false }), 'acceptor');
      expect(optional.trustedCertificates).to.equal(undefined);
    });

    it('lets a requestor go without a certificate, but not a certificate without its key', () => {
      const none = loadDicomTls(serverConfig({ DicomTlsCertificate: undefined, DicomTlsPrivateKey: undefined }), 'requestor');
      expect(none.certificate).to.equal(undefined);
      expect(none.trustedCertificates).to.not.equal(undefined);
      expect(configError(() => loadDicomTls(serverConfig({ DicomTlsPrivateKey: undefined }), 'requestor'))).to.match(/^DicomTlsPrivateKey must be set/);
    });

    it("maps Orthanc's DicomTlsMinimumProtocolVersion to TLS versions", () => {
      expect([0, 1, 2, 3, 4, 5].map(minimumTlsVersion)).to.deep.equal(['TLSv1.2', 'TLSv1', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3']);
      expect(() => minimumTlsVersion(6)).to.throw(RangeError);
    });
  });

  describe('pacsnode DICOM server, client certificates required', () => {
    let t: TestContext;
    let server: DicomScpServer;
    let port: number;

    before(async () => {
      t = await tempContext();
      server = new DicomScpServer(createDicomHandlers(t.ctx), {
        aet: 'PACSNODE',
        maxPduLength: 16384,
        idleTimeoutMs: 30000,
        tls: loadDicomTls(serverConfig(), 'acceptor'),
      });
      port = await server.listen(0, '127.0.0.1');
    });
    after(async () => {
      await server?.close(1000);
      await t?.close();
    });

    it('answers DCMTK echoscu +tls with a certificate from the trusted CA', async function () {
      if (!HAS_DCMTK) this.skip();
      const r = await run('echoscu', ['-aec', 'PACSNODE', '+tls', file('client.key'), file('client.pem'), '+cf', file('ca.pem'), '127.0.0.1', String(port)]);
      expect(r.code, r.out).to.equal(0);
    });

    it('refuses echoscu without a client certificate, with a certificate from another CA, and over plain TCP', async function () {
      if (!HAS_DCMTK) this.skip();
      const anonymous = await run('echoscu', ['-aec', 'PACSNODE', '+tla', '+cf', file('ca.pem'), '127.0.0.1', String(port)]);
      expect(anonymous.code, anonymous.out).to.not.equal(0);
      const rogue = await run('echoscu', ['-aec', 'PACSNODE', '+tls', file('rogue.key'), file('rogue.pem'), '+cf', file('ca.pem'), '127.0.0.1', String(port)]);
      expect(rogue.code, rogue.out).to.not.equal(0);
      const plain = await run('echoscu', ['-aec', 'PACSNODE', '127.0.0.1', String(port)]);
      expect(plain.code, plain.out).to.not.equal(0);
      // Nothing of these became an association; the server still serves.
      const good = await run('echoscu', ['-aec', 'PACSNODE', '+tls', file('client.key'), file('client.pem'), '+cf', file('ca.pem'), '127.0.0.1', String(port)]);
      expect(good.code, good.out).to.equal(0);
    });

    it('echoes with our own requestor over TLS, once per association and many times on one', async () => {
      expect(await echo(target(port, clientTls()))).to.equal(0);
      const association = await openAssociation({
        ...target(port, clientTls()),
        presentationContexts: [{ abstractSyntax: SopClasses.Verification, transferSyntaxes: ['1.2.840.10008.1.2'] }],
      });
      const session = new ScuSession(association, {});
      for (let i = 0; i < 50; i++) expect(await cEcho(session)).to.equal(0);
      await session.release();
    });

    it('refuses our requestor without a client certificate', async () => {
      const anonymous = loadDicomTls(serverConfig({ DicomTlsCertificate: undefined, DicomTlsPrivateKey: undefined }), 'requestor');
      const e = await rejection(echo(target(port, anonymous)));
      expect(e).to.be.instanceOf(AssociationError);
      expect(e.message).to.match(/TLS: tlsv13 alert certificate required|TLS: .*certificate|closed/);
    });

    it('refuses our requestor with a certificate from another CA', async () => {
      const e = await rejection(echo(target(port, clientTls({ DicomTlsCertificate: file('rogue.pem'), DicomTlsPrivateKey: file('rogue.key') }))));
      expect(e).to.be.instanceOf(AssociationError);
    });

    it('is refused by our requestor when the server does not chain to its trusted CAs', async () => {
      const e = await rejection(echo(target(port, clientTls({ DicomTlsTrustedCertificates: file('other.pem') }))));
      expect(e).to.be.instanceOf(AssociationError);
      expect((e as AssociationError).code).to.equal('ERR_ASSOC_CONNECT');
      expect(e.message).to.match(/^cannot connect to 127\.0\.0\.1:\d+ \(TLS\): .*certificate/);
    });
  });

  describe('pacsnode DICOM server, client certificates not required', () => {
    let t: TestContext;
    let server: DicomScpServer;
    let port: number;

    before(async () => {
      t = await tempContext();
      const tls = loadDicomTls(
        // The "nosan" certificate names no host: only a requestor checking host names refuses it.
        serverConfig({
          DicomTlsCertificate: file('nosan.pem'),
          DicomTlsPrivateKey: file('nosan.key'),
          DicomTlsTrustedCertificates: undefined,
          DicomTlsRemoteCertificateRequired: false,
        }),
        'acceptor',
      );
      server = new DicomScpServer(createDicomHandlers(t.ctx), { aet: 'PACSNODE', maxPduLength: 16384, idleTimeoutMs: 30000, tls });
      port = await server.listen(0, '127.0.0.1');
    });
    after(async () => {
      await server?.close(1000);
      await t?.close();
    });

    it('answers echoscu without a client certificate (it still verifies the server)', async function () {
      if (!HAS_DCMTK) this.skip();
      const r = await run('echoscu', ['-aec', 'PACSNODE', '+tla', '+cf', file('ca.pem'), '127.0.0.1', String(port)]);
      expect(r.code, r.out).to.equal(0);
    });

    it('answers our requestor without a certificate; the chain is verified but not the host name, unless asked', async () => {
      const anonymous = loadDicomTls(serverConfig({ DicomTlsCertificate: undefined, DicomTlsPrivateKey: undefined }), 'requestor');
      expect(await echo(target(port, anonymous))).to.equal(0);
      const e = await rejection(echo(target(port, { ...anonymous, checkHostname: true })));
      expect((e as AssociationError).code).to.equal('ERR_ASSOC_CONNECT');
      expect(e.message).to.contain("IP: 127.0.0.1 is not in the cert's list");
    });
  });

  describe('DicomTlsMinimumProtocolVersion', () => {
    async function protocolWith(minimum: number, min: SecureVersion, max: SecureVersion): Promise<string> {
      const t = await tempContext();
      const tls = loadDicomTls(serverConfig({ DicomTlsMinimumProtocolVersion: minimum }), 'acceptor');
      const server = new DicomScpServer(createDicomHandlers(t.ctx), { aet: 'PACSNODE', maxPduLength: 16384, idleTimeoutMs: 30000, tls });
      try {
        return await handshake(await server.listen(0, '127.0.0.1'), pki, min, max);
      } finally {
        await server.close(100);
        await t.close();
      }
    }

    it('0 (the default) accepts TLS 1.2 and 1.3 and refuses TLS 1.1', async () => {
      expect(await protocolWith(0, 'TLSv1.2', 'TLSv1.2')).to.equal('TLSv1.2');
      expect(await protocolWith(0, 'TLSv1', 'TLSv1.3')).to.equal('TLSv1.3');
      expect(await protocolWith(0, 'TLSv1', 'TLSv1.1')).to.match(/^error: /);
    });

    it('5 accepts TLS 1.3 only; 2 accepts TLS 1.0', async () => {
      expect(await protocolWith(5, 'TLSv1', 'TLSv1.2')).to.match(/^error: /);
      expect(await protocolWith(5, 'TLSv1.3', 'TLSv1.3')).to.equal('TLSv1.3');
      expect(await protocolWith(2, 'TLSv1', 'TLSv1')).to.equal('TLSv1');
    });
  });

  describe('our requestor against DCMTK storescp +tls', () => {
    const storescps: ChildProcess[] = [];
    async function storescp(cert: string): Promise<number> {
      const port = await freePort();
      const child = spawn('storescp', ['+tls', file(`${cert}.key`), file(`${cert}.pem`), '+cf', file('ca.pem'), '-aet', 'STORESCP', String(port)], {
        env: { ...process.env, TCP_NODELAY: '1' },
        stdio: 'ignore',
      });
      storescps.push(child);
      await waitForPort(port);
      return port;
    }
    before(function () {
      if (!HAS_DCMTK) this.skip();
    });
    after(() => {
      for (const child of storescps) child.kill();
    });

    it('echoes storescp over TLS with our client certificate (storescp requires one)', async () => {
      const port = await storescp('server');
      expect(await echo({ ...target(port, clientTls()), calledAet: 'STORESCP' })).to.equal(0);
      // The transport can also be given directly (the seam other transports use).
      const tls = clientTls();
      const association = await openAssociation({
        ...target(port, tls),
        calledAet: 'STORESCP',
        transport: tlsTransport('127.0.0.1', port, tls),
        presentationContexts: [{ abstractSyntax: SopClasses.Verification, transferSyntaxes: ['1.2.840.10008.1.2'] }],
      });
      await association.release();
    });

    it('C-MOVE sends to a modality with "UseDicomTls": true over TLS, with our DicomTls* credentials', async () => {
      const out = mkdtempSync(join(tmpdir(), 'pacsnode-tls-move-'));
      const port = await freePort();
      const child = spawn('storescp', ['+tls', file('server.key'), file('server.pem'), '+cf', file('ca.pem'), '-aet', 'STORESCP', '-od', out, String(port)], {
        env: { ...process.env, TCP_NODELAY: '1' },
        stdio: 'ignore',
      });
      storescps.push(child);
      await waitForPort(port);
      const t = await tempContext({
        DicomAlwaysAllowMove: true,
        DicomModalities: { secure: { AET: 'STORESCP', Host: '127.0.0.1', Port: port, UseDicomTls: true } },
        DicomTlsCertificate: file('client.pem'),
        DicomTlsPrivateKey: file('client.key'),
        DicomTlsTrustedCertificates: file('ca.pem'),
      });
      const server = new DicomScpServer(createDicomHandlers(t.ctx), { aet: 'PACSNODE', maxPduLength: 16384, idleTimeoutMs: 30000 });
      try {
        const bytes = makeInstance({ patientId: 'TLSMOVE', sopInstanceUid: '1.2.826.0.1.3680043.2.1125.77.1' });
        await t.ctx.store.store(bytes, { kind: 'rest' });
        const scpPort = await server.listen(0, '127.0.0.1');
        const summary = await move(
          { host: '127.0.0.1', port: scpPort, callingAet: 'MOVER', calledAet: 'PACSNODE' },
          { model: 'patient', level: 'PATIENT', keys: { PatientID: 'TLSMOVE' }, destinationAet: 'STORESCP' },
        );
        expect(summary.counts, JSON.stringify(summary)).to.deep.equal({ completed: 1, failed: 0, warning: 0 });
        const received = readdirSync(out);
        expect(received).to.have.length(1);
        const file1 = readFileSync(join(out, received[0]!));
        expect(file1.subarray(file1.length - 64).equals(bytes.subarray(bytes.length - 64))).to.equal(true);
      } finally {
        await server.close(1000);
        await t.close();
        rmSync(out, { recursive: true, force: true });
      }
    });

    it('pacsnode echo --tls: with a client certificate it echoes storescp; bad TLS options are usage errors (exit 2)', async () => {
      const port = await storescp('server');
      const cli = (args: string[]) => run(process.execPath, [join(import.meta.dirname, '..', 'bin', 'pacsnode'), 'echo', '--aec', 'STORESCP', ...args]);
      const ok = await cli(['--tls', '--tls-certificate', file('client.pem'), '--tls-key', file('client.key'), '--tls-trusted', file('ca.pem'), '127.0.0.1', String(port)]);
      expect(ok.code, ok.out).to.equal(0);
      expect(ok.out).to.contain('C-ECHO');
      const refused = await cli(['--tls', '--tls-trusted', file('ca.pem'), '127.0.0.1', String(port)]);
      expect(refused.code, refused.out).to.equal(2);
      const noTls = await cli(['--tls-key', file('client.key'), '127.0.0.1', String(port)]);
      expect(noTls.code, noTls.out).to.equal(2);
      expect(noTls.out).to.contain('need --tls');
      const missing = await cli(['--tls', '--tls-certificate', file('nowhere.pem'), '--tls-key', file('client.key'), '127.0.0.1', String(port)]);
      expect(missing.code, missing.out).to.equal(2);
      expect(missing.out).to.contain(`--tls-certificate: cannot read ${file('nowhere.pem')}`);
    });

    it('is refused by storescp without a certificate, and refuses storescp with a certificate from another CA', async () => {
      const port = await storescp('server');
      const anonymous = loadDicomTls(serverConfig({ DicomTlsCertificate: undefined, DicomTlsPrivateKey: undefined }), 'requestor');
      expect(await rejection(echo({ ...target(port, anonymous), calledAet: 'STORESCP' }))).to.be.instanceOf(AssociationError);
      const roguePort = await storescp('rogue');
      const e = await rejection(echo({ ...target(roguePort, clientTls()), calledAet: 'STORESCP' }));
      expect((e as AssociationError).code).to.equal('ERR_ASSOC_CONNECT');
    });
  });

  describe('pacsnode serve with DicomTlsEnabled', () => {
    it('serves TLS only, with paths relative to the configuration file', async function () {
      if (!HAS_DCMTK) this.skip();
      const config = join(pki, 'orthanc.json');
      writeFileSync(
        config,
        JSON.stringify({
          HttpPort: 0,
          DicomPort: 0,
          DicomAet: 'PACSNODE',
          StorageDirectory: join(pki, 'storage'),
          DicomTlsEnabled: true,
          DicomTlsCertificate: 'server.pem',
          DicomTlsPrivateKey: './server.key',
          DicomTlsTrustedCertificates: 'ca.pem',
        }),
      );
      const server = await startServer(config);
      try {
        const tls = await run('echoscu', ['-aec', 'PACSNODE', '+tls', file('client.key'), file('client.pem'), '+cf', file('ca.pem'), '127.0.0.1', String(server.dicomPort)]);
        expect(tls.code, tls.out).to.equal(0);
        const plain = await run('echoscu', ['-aec', 'PACSNODE', '127.0.0.1', String(server.dicomPort)]);
        expect(plain.code, plain.out).to.not.equal(0);
      } finally {
        server.child.kill('SIGTERM');
        await server.exited;
      }
    });

    it('does not start when a file is missing, naming the key and the path', async () => {
      const config = join(pki, 'broken.json');
      writeFileSync(
        config,
        JSON.stringify({
          HttpPort: 0,
          DicomPort: 0,
          StorageDirectory: join(pki, 'storage2'),
          DicomTlsEnabled: true,
          DicomTlsCertificate: 'nowhere.pem',
          DicomTlsPrivateKey: 'server.key',
          DicomTlsTrustedCertificates: 'ca.pem',
        }),
      );
      const e = await rejection(startServer(config));
      expect(e.message).to.contain(`configuration error: DicomTlsCertificate: cannot read ${file('nowhere.pem')}`);
    });
  });
});
