/**
 * dcmjs-dimse (devDependency, 0.3.3) as a third interop peer beside DCMTK and Orthanc (STYLE.md, decisions):
 * its Client exercises pacsnode's DicomScpServer (C-ECHO, C-STORE, C-FIND), and its Server, with a small Scp
 * that accepts everything and collects what it receives, exercises pacsnode's echo and store SCUs. All on
 * loopback: pacsnode with port 0; dcmjs-dimse's Server also listens on port 0 and its bound port is read back.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import dimse from 'dcmjs-dimse';
import { createDicomHandlers } from '../src/app/dicom-handlers.js';
import { readDataset, readPart10 } from '../src/dicom/reader.js';
import { Tags } from '../src/dicom/tag.js';
import { ExplicitVRLittleEndian, ImplicitVRLittleEndian } from '../src/dicom/transfer-syntax.js';
import { DicomScpServer } from '../src/dimse/scp/server.js';
import { echo } from '../src/dimse/scu/echo.js';
import { storeInstances } from '../src/dimse/scu/store.js';
import { Status } from '../src/dimse/status.js';
import { MetadataType } from '../src/store/sqlite-index.js';
import { tempContext, type TestContext } from './helpers/context.js';
import { makeInstance } from './helpers/factory.js';
import { datasetBytes, expectSameValues, findInstance } from './helpers/interop.js';

const { Client, Server, Scp, Dataset } = dimse;
const { CEchoRequest, CFindRequest, CStoreRequest } = dimse.requests;
const { CEchoResponse, CStoreResponse } = dimse.responses;
const { PresentationContextResult } = dimse.constants;

type DimseRequest = InstanceType<typeof dimse.requests.Request>;
type DimseResponse = InstanceType<typeof dimse.responses.Response>;
type DimseAssociation = InstanceType<typeof dimse.association.Association>;
type DimsePresentationContext = InstanceType<typeof dimse.association.PresentationContext>;

// dcmjs-dimse logs through loglevel at info, and its own dcmjs warns about what it reads: not ours to show.
dimse.log.setLevel('silent');
{
  const requireFromDimse = createRequire(createRequire(import.meta.url).resolve('dcmjs-dimse'));
  const dcmjs = requireFromDimse('dcmjs') as { log: { getLogger(name: string): { setLevel(level: string): void } } };
  dcmjs.log.getLogger('validation.dcmjs').setLevel('silent');
}

/** Runs a dcmjs-dimse Client to its end (association closed), collecting every request's responses. */
function runClient(port: number, requests: DimseRequest[], calledAet = 'PACSNODE', callingAet = 'DCMJS') {
  const responses = new Map<DimseRequest, DimseResponse[]>(requests.map((r) => [r, []]));
  const client = new Client();
  const errors: Error[] = [];
  let accepted = false;
  let released = false;
  for (const request of requests) {
    request.on('response', (response: DimseResponse) => responses.get(request)!.push(response));
    client.addRequest(request);
  }
  client.on('associationAccepted', () => (accepted = true));
  client.on('associationReleased', () => (released = true));
  client.on('networkError', (e: Error) => errors.push(e));
  return new Promise<{ responses: Map<DimseRequest, DimseResponse[]>; errors: Error[]; accepted: boolean; released: boolean }>(
    (resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('dcmjs-dimse client did not finish within 20 s')), 20000);
      client.on('closed', () => {
        clearTimeout(timer);
        resolve({ responses, errors, accepted, released });
      });
      client.send('127.0.0.1', port, callingAet, calledAet, { associationLingerTimeout: 0 });
    },
  );
}

describe('dcmjs-dimse Client -> pacsnode DicomScpServer', function () {
  this.timeout(60000);
  let t: TestContext;
  let server: DicomScpServer;
  let port: number;
  let dir: string;

  before(async () => {
    t = await tempContext({ DicomAlwaysAllowFind: true });
    server = new DicomScpServer(createDicomHandlers(t.ctx), { aet: 'PACSNODE', maxPduLength: 16384, idleTimeoutMs: 30000 });
    port = await server.listen(0, '127.0.0.1');
    dir = mkdtempSync(join(tmpdir(), 'pacsnode-dcmjs-'));
  });
  after(async () => {
    await server?.close(1000);
    await t?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers C-ECHO', async () => {
    const request = new CEchoRequest();
    const r = await runClient(port, [request]);
    expect(r.errors).to.deep.equal([]);
    expect(r.accepted && r.released).to.equal(true);
    expect(r.responses.get(request)!.map((x) => x.getStatus())).to.deep.equal([Status.Success]);
  });

  it('stores what its C-STORE sends (three instances, one association), with the element values sent', async () => {
    const studyInstanceUid = '1.2.826.0.1.3680043.99.41';
    const files = [
      makeInstance({ patientId: 'DCMJS1', patientName: 'DCMJS^STORE', studyInstanceUid, instanceNumber: 1, pixelBytes: 40000 }),
      makeInstance({ patientId: 'DCMJS1', patientName: 'DCMJS^STORE', studyInstanceUid, instanceNumber: 2, transferSyntaxUid: ImplicitVRLittleEndian }),
      makeInstance({
        patientId: 'DCMJS1',
        patientName: 'DCMJS^STORE',
        studyInstanceUid,
        instanceNumber: 3,
        extra: [
          { tag: 0x00180050, vr: 'DS', value: '0.625' },
          { tag: 0x00280030, vr: 'DS', value: '0.5\\0.5' },
          { tag: 0x00200032, vr: 'DS', value: '-125\\-125\\10.5' },
          {
            tag: 0x00081140,
            vr: 'SQ',
            value: [[
              { tag: Tags.ReferencedSOPClassUID, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.2' },
              { tag: Tags.ReferencedSOPInstanceUID, vr: 'UI', value: '1.2.826.0.1.3680043.99.41.9' },
            ]],
          },
        ],
      }),
    ];
    const requests = files.map((f, i) => {
      const path = join(dir, `store${i}.dcm`);
      writeFileSync(path, f);
      return new CStoreRequest(path);
    });
    const r = await runClient(port, requests, 'PACSNODE', 'DCMJSSTORE');
    expect(r.errors).to.deep.equal([]);
    for (const request of requests) expect(r.responses.get(request)!.map((x) => x.getStatus())).to.deep.equal([Status.Success]);
    for (const file of files) {
      const sent = readPart10(file);
      const sop = sent.dataset.string(Tags.SOPInstanceUID)!;
      const row = findInstance(t.ctx, sop);
      expect(row, `${sop} stored`).to.not.equal(undefined);
      const stored = readPart10(await t.ctx.store.readDicom(row!.publicId));
      // dcmjs-dimse re-encodes what it sends (the syntax it chose may differ from the file's): values, not bytes.
      expectSameValues(sent.dataset, stored.dataset, sop);
      // pacsnode stores what came over the wire: its meta header names the syntax of the context used.
      const meta = new Map(t.ctx.index.metadata(row!.id).map((m) => [m.type, m.value]));
      expect(meta.get(MetadataType.RemoteAET)).to.equal('DCMJSSTORE');
      expect(meta.get(MetadataType.TransferSyntax)).to.equal(stored.transferSyntaxUid);
      expect([ExplicitVRLittleEndian, ImplicitVRLittleEndian]).to.include(stored.transferSyntaxUid);
    }
  });

  it('answers its study-level C-FIND with a wildcard, with the keys asked for', async () => {
    const studies = ['1.2.826.0.1.3680043.99.42.1', '1.2.826.0.1.3680043.99.42.2'];
    for (const [i, studyInstanceUid] of studies.entries()) {
      await t.ctx.store.store(
        makeInstance({ patientId: `FINDPID${i}`, patientName: `FINDME^NUMBER${i}`, studyInstanceUid, studyDate: `2023010${i + 1}`, modality: 'MR' }),
        { kind: 'rest' },
      );
    }
    await t.ctx.store.store(makeInstance({ patientId: 'OTHER', patientName: 'NOTME^X' }), { kind: 'rest' });
    const request = CFindRequest.createStudyFindRequest({
      PatientName: 'FINDME*',
      PatientID: '',
      StudyInstanceUID: '',
      StudyDate: '',
      ModalitiesInStudy: '',
      NumberOfStudyRelatedInstances: '',
    });
    const r = await runClient(port, [request]);
    expect(r.errors).to.deep.equal([]);
    const responses = r.responses.get(request)!;
    expect(responses.map((x) => x.getStatus())).to.deep.equal([Status.Pending, Status.Pending, Status.Success]);
    const answers = responses
      .filter((x) => x.getStatus() === Status.Pending)
      .map((x) => x.getDataset()!.getElements() as Record<string, unknown>)
      .sort((a, b) => String(a.StudyInstanceUID).localeCompare(String(b.StudyInstanceUID)));
    expect(answers.map((a) => a.StudyInstanceUID)).to.deep.equal(studies);
    answers.forEach((a, i) => {
      expect(a.QueryRetrieveLevel).to.equal('STUDY');
      expect(a.PatientID).to.equal(`FINDPID${i}`);
      expect(a.PatientName).to.deep.equal([{ Alphabetic: `FINDME^NUMBER${i}` }]);
      expect(a.StudyDate).to.equal(`2023010${i + 1}`);
      expect(a.ModalitiesInStudy).to.equal('MR');
      expect(Number(a.NumberOfStudyRelatedInstances)).to.equal(1);
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------

interface Received {
  callingAet: string;
  calledAet: string;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** The dataset bytes exactly as they came over the wire. */
  bytes: Buffer;
}

interface CollectingServer {
  port: number;
  received: Received[];
  echoes: number;
  close(): void;
}

/**
 * A dcmjs-dimse Server whose Scp accepts every proposed context (with the first of the proposed transfer syntaxes
 * that `accepts` allows), answers C-ECHO and C-STORE with Success, and keeps each C-STORE's dataset bytes as
 * received (through its `createStoreWritableStream` hook, so nothing is decoded and re-encoded on the way).
 */
async function collectingServer(accepts: (transferSyntaxUid: string) => boolean = () => true): Promise<CollectingServer> {
  const state = { received: [] as Received[], echoes: 0 };

  class CollectingScp extends Scp {
    private association: DimseAssociation | undefined;
    private chunks = new Map<Writable, Buffer[]>();

    override associationRequested(association: DimseAssociation): void {
      this.association = association;
      for (const { id } of association.getPresentationContexts()) {
        const context = association.getPresentationContext(id);
        const syntax = context.getTransferSyntaxUids().find(accepts);
        if (syntax) context.setResult(PresentationContextResult.Accept, syntax);
        else context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
      }
      this.sendAssociationAccept();
    }

    override associationReleaseRequested(): void {
      this.sendAssociationReleaseResponse();
    }

    override cEchoRequest(request: InstanceType<typeof CEchoRequest>, callback: (response: InstanceType<typeof CEchoResponse>) => void): void {
      state.echoes++;
      const response = CEchoResponse.fromRequest(request);
      response.setStatus(Status.Success);
      callback(response);
    }

    override createStoreWritableStream(): Writable {
      const chunks: Buffer[] = [];
      const writable = new Writable({
        highWaterMark: 1 << 24,
        write(chunk: Buffer, _encoding, done) {
          chunks.push(Buffer.from(chunk));
          done();
        },
      });
      this.chunks.set(writable, chunks);
      return writable;
    }

    override createDatasetFromStoreWritableStream(
      writable: Writable,
      context: DimsePresentationContext,
      callback: (dataset: InstanceType<typeof Dataset>) => void,
    ): void {
      const bytes = Buffer.concat(this.chunks.get(writable) ?? []);
      this.chunks.delete(writable);
      const dataset = new Dataset({}, context.getAcceptedTransferSyntaxUid());
      (dataset as unknown as { raw: Buffer }).raw = bytes;
      callback(dataset);
    }

    override cStoreRequest(request: InstanceType<typeof CStoreRequest>, callback: (response: InstanceType<typeof CStoreResponse>) => void): void {
      const dataset = request.getDataset() as unknown as { raw: Buffer; getTransferSyntaxUid(): string };
      state.received.push({
        callingAet: this.association?.getCallingAeTitle() ?? '',
        calledAet: this.association?.getCalledAeTitle() ?? '',
        sopClassUid: request.getAffectedSopClassUid(),
        sopInstanceUid: request.getAffectedSopInstanceUid(),
        transferSyntaxUid: dataset.getTransferSyntaxUid(),
        bytes: dataset.raw,
      });
      const response = CStoreResponse.fromRequest(request);
      response.setStatus(Status.Success);
      callback(response);
    }
  }

  const server = new Server(CollectingScp);
  server.on('networkError', () => undefined);
  await new Promise<void>((resolve) => {
    server.on('listening', () => resolve());
    server.listen(0);
  });
  // The bound port of its node:net server (dcmjs-dimse does not expose it).
  const port = ((server as unknown as { server: { address(): { port: number } } }).server.address()).port;
  return {
    port,
    get received() {
      return state.received;
    },
    get echoes() {
      return state.echoes;
    },
    close: () => server.close(),
  };
}

describe('pacsnode SCUs -> dcmjs-dimse Server', function () {
  this.timeout(60000);
  const servers: CollectingServer[] = [];
  afterEach(() => servers.splice(0).forEach((s) => s.close()));
  const start = async (accepts?: (ts: string) => boolean) => {
    const s = await collectingServer(accepts);
    servers.push(s);
    return s;
  };
  const target = (port: number) => ({ host: '127.0.0.1', port, callingAet: 'PACSNODE', calledAet: 'DCMJSSCP' });

  it('echoes it', async () => {
    const s = await start();
    expect(await echo(target(s.port))).to.equal(Status.Success);
    expect(s.echoes).to.equal(1);
  });

  it('stores into it over one association, dataset bytes unchanged when it accepts the files\' own syntaxes', async () => {
    const s = await start();
    const files = [
      makeInstance({ patientId: 'TODCMJS', instanceNumber: 1, pixelBytes: 50000 }),
      makeInstance({ patientId: 'TODCMJS', instanceNumber: 2, transferSyntaxUid: ImplicitVRLittleEndian }),
      makeInstance({ patientId: 'TODCMJS', instanceNumber: 3, extra: [{ tag: 0x00090010, vr: 'LO', value: 'PRIVATE CREATOR' }, { tag: 0x00091001, vr: 'OB', value: Buffer.from([1, 2, 3, 4]) }] }),
    ];
    const summary = await storeInstances(target(s.port), files.map((bytes, i) => ({ bytes, name: `f${i}` })));
    expect(summary.results.map((r) => r.outcome)).to.deep.equal(['sent', 'sent', 'sent']);
    expect(summary.associations).to.equal(1);
    expect(s.received).to.have.length(3);
    for (const file of files) {
      const parsed = readPart10(file);
      const sop = parsed.dataset.string(Tags.SOPInstanceUID)!;
      const got = s.received.find((r) => r.sopInstanceUid === sop);
      expect(got, sop).to.not.equal(undefined);
      expect(got!.callingAet).to.equal('PACSNODE');
      expect(got!.calledAet).to.equal('DCMJSSCP');
      expect(got!.sopClassUid).to.equal(parsed.dataset.string(Tags.SOPClassUID));
      expect(got!.transferSyntaxUid).to.equal(parsed.transferSyntaxUid);
      expect(got!.bytes.equals(datasetBytes(file)), `${sop}: bytes`).to.equal(true);
    }
  });

  it('converts for it when it takes Implicit VR Little Endian only (values kept)', async () => {
    const s = await start((ts) => ts === ImplicitVRLittleEndian);
    const file = makeInstance({ patientId: 'TODCMJS', patientName: 'IMPLICIT^ONLY', extra: [{ tag: 0x00280030, vr: 'DS', value: '0.5\\0.5' }] });
    const summary = await storeInstances(target(s.port), [{ bytes: file, name: 'explicit' }]);
    expect(summary.results[0]!.outcome).to.equal('sent');
    expect(summary.results[0]!.converted).to.equal(true);
    const [got] = s.received;
    expect(got!.transferSyntaxUid).to.equal(ImplicitVRLittleEndian);
    expectSameValues(readPart10(file).dataset, readDataset(got!.bytes, ImplicitVRLittleEndian), 'converted');
  });
});
