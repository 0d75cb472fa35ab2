/**
 * The DICOM server's settings changed over REST while it runs (`/tools/accepted-transfer-syntaxes`,
 * `/tools/unknown-sop-class-accepted`), checked with DCMTK's storescu against the running DICOM server; the
 * configuration keys behind them (`AcceptedTransferSyntaxes`, the legacy `*TransferSyntaxAccepted` booleans); and
 * Orthanc's `/tools/log-level` routes.
 */
import { expect } from 'chai';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDicomHandlers } from '../src/app/dicom-handlers.js';
import { configuredTransferSyntaxes, transferSyntaxesMatching } from '../src/app/dicom-settings.js';
import { buildConfig } from '../src/config/load.js';
import { readPart10 } from '../src/dicom/reader.js';
import { getCategoryLogLevel, getLogLevel, logger, setCategoryLogLevel, setLogLevel, type LogLevel } from '../src/core/log.js';
import { ALL_TRANSFER_SYNTAXES, ExplicitVRLittleEndian, ImplicitVRLittleEndian } from '../src/dicom/transfer-syntax.js';
import { DicomScpServer } from '../src/dimse/scp/server.js';
import { storeInstances } from '../src/dimse/scu/store.js';
import { makeInstance } from './helpers/factory.js';
import { tempContext, tempServer, type TestServer } from './helpers/context.js';
import { call as callUrl } from './helpers/http.js';
import { run } from './helpers/interop.js';

const call = (s: TestServer, method: string, path: string, body?: string) => callUrl(s.url, method, path, body);

const ALL = ALL_TRANSFER_SYNTAXES.map((t) => t.uid);
/** A private SOP class: neither a standard storage class nor any other service's. */
const PRIVATE_SOP_CLASS = '1.2.826.0.1.3680043.99.1.1';

describe('DICOM settings: transfer syntax patterns', () => {
  it('matches UIDs and wildcards against the known transfer syntaxes, in table order', () => {
    expect(transferSyntaxesMatching(['1.2.840.10008.1.*'])).to.deep.equal(ALL);
    expect(transferSyntaxesMatching(['1.2.840.10008.1.2.1', '1.2.840.10008.1.2'])).to.deep.equal([ImplicitVRLittleEndian, ExplicitVRLittleEndian]);
    expect(transferSyntaxesMatching(['1.2.840.10008.1.2.4.9?'])).to.deep.equal([
      '1.2.840.10008.1.2.4.90',
      '1.2.840.10008.1.2.4.91',
      '1.2.840.10008.1.2.4.92',
      '1.2.840.10008.1.2.4.93',
    ]);
    expect(transferSyntaxesMatching(['9.9.*'])).to.deep.equal([]);
    expect(() => transferSyntaxesMatching(['1.2.3.4'])).to.throw('unknown transfer syntax: 1.2.3.4');
  });

  it('reads AcceptedTransferSyntaxes (one UID or a list) and otherwise the legacy booleans', () => {
    const of = (file: Record<string, unknown>) => configuredTransferSyntaxes(buildConfig(file, 'test').config);
    expect(of({})).to.deep.equal(ALL);
    expect(of({ AcceptedTransferSyntaxes: '1.2.840.10008.1.2' })).to.deep.equal([ImplicitVRLittleEndian]);
    expect(of({ AcceptedTransferSyntaxes: ['1.2.840.10008.1.2.4.5*', '1.2.840.10008.1.2.5'] })).to.deep.equal([
      '1.2.840.10008.1.2.4.50',
      '1.2.840.10008.1.2.4.51',
      '1.2.840.10008.1.2.4.57',
      '1.2.840.10008.1.2.5',
    ]);
    const legacyOff = {
      DeflatedTransferSyntaxAccepted: false,
      JpegTransferSyntaxAccepted: false,
      Jpeg2000TransferSyntaxAccepted: false,
      JpegLosslessTransferSyntaxAccepted: false,
      JpipTransferSyntaxAccepted: false,
      Mpeg2TransferSyntaxAccepted: false,
      Mpeg4TransferSyntaxAccepted: false,
      H265TransferSyntaxAccepted: false,
      RleTransferSyntaxAccepted: false,
    };
    // The uncompressed syntaxes stay: Orthanc's legacy mode always accepts them.
    expect(of(legacyOff)).to.deep.equal(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.1.98', '1.2.840.10008.1.2.2']);
    expect(of({ ...legacyOff, RleTransferSyntaxAccepted: true })).to.include('1.2.840.10008.1.2.5').and.have.length(5);
    // AcceptedTransferSyntaxes wins over the legacy booleans.
    expect(of({ ...legacyOff, AcceptedTransferSyntaxes: ['1.2.840.10008.1.2.4.80'] })).to.deep.equal(['1.2.840.10008.1.2.4.80']);
  });

  it('refuses a malformed value when the file is read, and an unknown UID when the server starts', async () => {
    expect(() => buildConfig({ AcceptedTransferSyntaxes: 12 }, 'test')).to.throw(/AcceptedTransferSyntaxes must be a transfer syntax UID/);
    expect(() => buildConfig({ AcceptedTransferSyntaxes: ['1.2.840.10008.1.2', 'JPEG'] }, 'test')).to.throw(/AcceptedTransferSyntaxes/);
    let error: unknown;
    try {
      const t = await tempContext({ AcceptedTransferSyntaxes: ['1.2.3.4'] });
      await t.close();
    } catch (e) {
      error = e;
    }
    expect((error as { details?: string }).details).to.match(/AcceptedTransferSyntaxes: unknown transfer syntax: 1\.2\.3\.4/);
  });
});

describe('REST: /tools/accepted-transfer-syntaxes and /tools/unknown-sop-class-accepted with storescu', function () {
  let s: TestServer;
  let dicom: DicomScpServer;
  let port: number;
  let scratch: string;
  let ctFile: string;
  let privateFile: string;

  before(async function () {
    if (!existsSync('/usr/bin/storescu')) this.skip(); // dcmtk is installed by .ci/run
    scratch = mkdtempSync(join(tmpdir(), 'pacsnode-settings-test-'));
    s = await tempServer();
    dicom = new DicomScpServer(createDicomHandlers(s.ctx), { aet: 'PACSNODE', maxPduLength: 16384, idleTimeoutMs: 30000 });
    port = await dicom.listen(0, '127.0.0.1');
    ctFile = join(scratch, 'ct.dcm');
    writeFileSync(ctFile, makeInstance({ sopInstanceUid: '1.2.826.0.1.3680043.99.2.1' }));
    privateFile = join(scratch, 'private.dcm');
    writeFileSync(privateFile, makeInstance({ sopInstanceUid: '1.2.826.0.1.3680043.99.2.2', sopClassUid: PRIVATE_SOP_CLASS }));
  });

  after(async () => {
    await dicom?.close();
    await s?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  // -R: the presentation contexts come from the file (storescu proposes a private SOP class only this way).
  const target = () => ({ host: '127.0.0.1', port, callingAet: 'MODALITY', calledAet: 'PACSNODE' });
  const storescu = (file: string) => run('storescu', ['-R', '-aec', 'PACSNODE', '127.0.0.1', String(port), file]);
  const instanceCount = async () => ((await call(s, 'GET', '/instances')).json as string[]).length;

  it('a C-STORE in a syntax taken out of the list is refused, and accepted again once it is back', async () => {
    expect((await call(s, 'GET', '/tools/accepted-transfer-syntaxes')).json).to.deep.equal(ALL);
    // Only compressed syntaxes: storescu's uncompressed proposals all get refused.
    const put = await call(s, 'PUT', '/tools/accepted-transfer-syntaxes', JSON.stringify(['1.2.840.10008.1.2.4.*', '1.2.840.10008.1.2.5']));
    expect(put.status).to.equal(200);
    expect(put.json).to.be.an('array').that.includes('1.2.840.10008.1.2.5').and.not.includes(ExplicitVRLittleEndian);
    expect((await call(s, 'GET', '/tools/accepted-transfer-syntaxes')).json).to.deep.equal(put.json);
    const refused = await storescu(ctFile);
    expect(refused.code, refused.out).to.not.equal(0);
    expect(refused.out).to.match(/presentation context/i);
    expect(await instanceCount()).to.equal(0);
    // A bare UID (not JSON) and a JSON string are both one UID, as in Orthanc.
    expect((await call(s, 'PUT', '/tools/accepted-transfer-syntaxes', '1.2.840.10008.1.2.1')).json).to.deep.equal([ExplicitVRLittleEndian]);
    expect((await call(s, 'PUT', '/tools/accepted-transfer-syntaxes', '"1.2.840.10008.1.*"')).json).to.deep.equal(ALL);
    const stored = await storescu(ctFile);
    expect(stored.code, stored.out).to.equal(0);
    expect(await instanceCount()).to.equal(1);
  });

  it('refuses unknown UIDs and malformed bodies with 400, leaving the list as it was', async () => {
    for (const body of [JSON.stringify(['1.2.3.4']), JSON.stringify({ a: 1 }), JSON.stringify([1, 2])]) {
      const r = await call(s, 'PUT', '/tools/accepted-transfer-syntaxes', body);
      expect(r.status, body).to.equal(400);
      expect(r.json).to.include({ HttpStatus: 400, Method: 'PUT', Uri: '/tools/accepted-transfer-syntaxes' });
    }
    expect((await call(s, 'GET', '/tools/accepted-transfer-syntaxes')).json).to.deep.equal(ALL);
  });

  it('a private SOP class is stored only while unknown SOP classes are accepted', async () => {
    // storescu refuses to send a SOP class it does not know: pacsnode's own SCU sends it.
    const send = async () => (await storeInstances(target(), [{ bytes: readFileSync(privateFile), name: 'private' }])).results[0]!;
    expect((await call(s, 'GET', '/tools/unknown-sop-class-accepted')).text).to.equal('0');
    const before = await instanceCount();
    const refused = await send();
    expect(refused.outcome, refused.message).to.equal('failed');
    expect(await instanceCount()).to.equal(before);
    expect((await call(s, 'PUT', '/tools/unknown-sop-class-accepted', '1')).status).to.equal(200);
    expect((await call(s, 'GET', '/tools/unknown-sop-class-accepted')).text).to.equal('1');
    const stored = await send();
    expect(stored.outcome, stored.message).to.equal('sent');
    expect(await instanceCount()).to.equal(before + 1);
    expect((await call(s, 'PUT', '/tools/unknown-sop-class-accepted', 'false')).status).to.equal(200);
    expect((await call(s, 'GET', '/tools/unknown-sop-class-accepted')).text).to.equal('0');
    const bad = await call(s, 'PUT', '/tools/unknown-sop-class-accepted', 'maybe');
    expect(bad.status).to.equal(400);
    expect((await call(s, 'GET', '/tools/unknown-sop-class-accepted')).text).to.equal('0');
  });
});

describe('DICOM settings: a caller allowed to C-GET and to C-STORE', function () {
  let t: TestServer;
  let dicom: DicomScpServer;
  let port: number;
  let scratch: string;

  before(async function () {
    if (!existsSync('/usr/bin/getscu')) this.skip(); // dcmtk is installed by .ci/run
    scratch = mkdtempSync(join(tmpdir(), 'pacsnode-settings-get-'));
    // The long form allows every service (AllowGet, AllowStore...) to BOTH.
    t = await tempServer({ AcceptedTransferSyntaxes: [ImplicitVRLittleEndian], DicomModalities: { both: { AET: 'BOTH', Host: '127.0.0.1', Port: 104 } } });
    dicom = new DicomScpServer(createDicomHandlers(t.ctx), { aet: 'PACSNODE', maxPduLength: 16384, idleTimeoutMs: 30000 });
    port = await dicom.listen(0, '127.0.0.1');
  });
  after(async () => {
    await dicom?.close();
    await t?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('its C-STORE gets only the accepted syntaxes, while its C-GET still receives files as stored', async () => {
    const file = join(scratch, 'be.dcm');
    writeFileSync(file, makeInstance({ sopInstanceUid: '1.2.826.0.1.3680043.99.7.1', studyInstanceUid: '1.2.826.0.1.3680043.99.7' }));
    // storescu proposes Explicit VR Big Endian first: refused, it falls back to (and converts to) Implicit VR.
    const stored = await run('storescu', ['-xb', '-aet', 'BOTH', '-aec', 'PACSNODE', '127.0.0.1', String(port), file]);
    expect(stored.code, stored.out).to.equal(0);
    const [id] = (await call(t, 'GET', '/instances')).json as unknown as string[];
    const meta = (await call(t, 'GET', `/instances/${id}/metadata?expand`)).json as unknown as Record<string, string>;
    expect(meta.TransferSyntax).to.equal(ImplicitVRLittleEndian);
    // The same caller's C-GET (SCP role proposed for the storage classes) is offered every syntax; getscu proposes
    // Explicit VR Little Endian only: the Implicit VR file is converted for it.
    const out = mkdtempSync(join(scratch, 'get-'));
    const got = await run('getscu', ['-S', '-aet', 'BOTH', '-aec', 'PACSNODE', '-od', out, '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID=1.2.826.0.1.3680043.99.7', '127.0.0.1', String(port)]);
    expect(got.code, got.out).to.equal(0);
    const files = readdirSync(out);
    expect(files, got.out).to.have.length(1);
    expect(readPart10(readFileSync(join(out, files[0]!))).transferSyntaxUid).to.equal(ExplicitVRLittleEndian);
  });
});

describe('REST: /tools/log-level', () => {
  let s: TestServer;
  let saved: string;

  before(async () => {
    saved = getLogLevel();
    s = await tempServer();
  });

  after(async () => {
    for (const c of ['generic', 'http', 'dicom', 'sqlite', 'jobs', 'dicomweb'] as const) setCategoryLogLevel(c, undefined);
    setLogLevel(saved as LogLevel);
    await s.close();
  });

  it('sets the global level and each category, in Orthanc names', async () => {
    expect((await call(s, 'PUT', '/tools/log-level', 'verbose')).text).to.equal('verbose');
    expect((await call(s, 'GET', '/tools/log-level')).text).to.equal('verbose');
    expect(logger('store').isEnabled('verbose')).to.equal(true);
    expect(logger('store').isEnabled('debug')).to.equal(false);
    expect((await call(s, 'PUT', '/tools/log-level-dicom', 'trace')).text).to.equal('trace');
    expect((await call(s, 'GET', '/tools/log-level-dicom')).text).to.equal('trace');
    expect(getCategoryLogLevel('dicom')).to.equal('debug');
    expect(logger('dicom').isEnabled('debug')).to.equal(true);
    expect(logger('http').isEnabled('debug')).to.equal(false);
    // "plugins" is the DICOMweb server's category.
    expect((await call(s, 'PUT', '/tools/log-level-plugins', 'verbose')).status).to.equal(200);
    expect(getCategoryLogLevel('dicomweb')).to.equal('verbose');
    // The global level applies to every category again.
    expect((await call(s, 'PUT', '/tools/log-level', 'default')).text).to.equal('default');
    expect((await call(s, 'GET', '/tools/log-level-dicom')).text).to.equal('default');
    expect(logger('dicom').isEnabled('debug')).to.equal(false);
    expect(logger('dicom').isEnabled('info')).to.equal(true);
  });

  it('refuses unknown levels (400) and categories (404)', async () => {
    const bad = await call(s, 'PUT', '/tools/log-level', 'loud');
    expect(bad.status).to.equal(400);
    expect(bad.json.Details).to.match(/default, verbose or trace/);
    expect((await call(s, 'GET', '/tools/log-level')).text).to.equal('default');
    expect((await call(s, 'PUT', '/tools/log-level-lua2', 'verbose')).status).to.equal(404);
    expect((await call(s, 'GET', '/tools/log-level-nothing')).status).to.equal(404);
  });
});
