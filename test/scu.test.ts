/**
 * The requestor side: association requestor role (PS3.8), the DIMSE SCU session, the echo and store SCUs and the
 * `pacsnode echo` / `pacsnode store` commands, against real peers on loopback: DCMTK's storescp (Debian package
 * dcmtk), pacsnode's own DicomScpServer, and scripted raw-TCP peers for the paths no real peer takes on demand
 * (rejections of every kind, aborts, silence, release collisions).
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Socket, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDicomHandlers } from '../src/app/dicom-handlers.js';
import type { DataSet, Element } from '../src/dicom/dataset.js';
import { readPart10 } from '../src/dicom/reader.js';
import { Tags } from '../src/dicom/tag.js';
import {
  DeflatedExplicitVRLittleEndian,
  ExplicitVRBigEndian,
  ExplicitVRLittleEndian,
  ImplicitVRLittleEndian,
  transferSyntax,
} from '../src/dicom/transfer-syntax.js';
import { generateUid, SopClasses } from '../src/dicom/uids.js';
import type { WriteElement } from '../src/dicom/writer.js';
import { MessageAssembler } from '../src/dimse/fragment.js';
import type { DicomHandlers } from '../src/dimse/handlers.js';
import {
  cEchoRsp,
  cFindRsp,
  cStoreRsp,
  decodeMessage,
  encodeMessage,
  fromCommandSet,
  type CEchoRq,
  type CFindRq,
  type CStoreRq,
  type DimseMessage,
} from '../src/dimse/messages.js';
import { DicomScpServer } from '../src/dimse/scp/server.js';
import { echo } from '../src/dimse/scu/echo.js';
import { ScuError, ScuSession } from '../src/dimse/scu/session.js';
import { planContexts, storeInstances, type StoreFileResult } from '../src/dimse/scu/store.js';
import { canTranscode, transcodeDataset } from '../src/dimse/scu/transcode.js';
import { Status } from '../src/dimse/status.js';
import {
  Association,
  AssociationAbortedError,
  AssociationError,
  AssociationRejectedError,
  describeRejection,
} from '../src/net/association.js';
import { openAssociation, type OpenAssociationOptions } from '../src/net/connect.js';
import { decodePdu, encodePdu } from '../src/net/pdu/codec.js';
import { PduFramer } from '../src/net/pdu/framer.js';
import { emptyUserInformation, type AAssociateAc, type AAssociateRq, type Pdu } from '../src/net/pdu/types.js';
import { UlServer } from '../src/net/server.js';
import { tempContext, type TestContext } from './helpers/context.js';
import { makeInstance } from './helpers/factory.js';
import { ROOT } from './helpers/process.js';
import { freePort, waitForPort } from './helpers/interop.js';

const CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files/';
const HAS_DCMTK = existsSync('/usr/bin/storescp');
const VERIFICATION = SopClasses.Verification;

// ---------------------------------------------------------------------------------------------------------------
// Helpers

interface Storescp {
  port: number;
  dir: string;
  child: ChildProcess;
  stop(): void;
}

/** DCMTK's storescp writing what it receives, bit-preserving (+B), into a fresh folder. */
async function startStorescp(args: string[]): Promise<Storescp> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'pacsnode-storescp-'));
  const child = spawn('storescp', [...args, '+B', '-od', dir, '-aet', 'STORESCP', String(port)], {
    env: { ...process.env, TCP_NODELAY: '1' },
    stdio: 'ignore',
  });
  await waitForPort(port);
  return {
    port,
    dir,
    child,
    stop() {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The dataset bytes of a Part 10 file (after the meta header). */
function datasetBytes(file: Buffer): Buffer {
  return file.subarray(readPart10(file, { untilPixelData: true }).datasetOffset);
}

/** The file storescp wrote for an instance (its name ends with the SOP Instance UID). */
function writtenFile(dir: string, sopInstanceUid: string): Buffer {
  const name = readdirSync(dir).find((f) => f.endsWith(`.${sopInstanceUid}`));
  expect(name, `storescp wrote ${sopInstanceUid}`).to.not.equal(undefined);
  return readFileSync(join(dir, name!));
}

/** Units whose byte order matters, read independently of src/dimse/scu/transcode.ts. */
const UNIT: Record<string, number> = { US: 2, SS: 2, OW: 2, AT: 2, UL: 4, SL: 4, FL: 4, OF: 4, OL: 4, FD: 8, OD: 8, SV: 8, UV: 8, OV: 8 };

/** An element's value in little endian byte order (each number of a binary VR reversed when big endian). */
function valueOf(ds: DataSet, el: Element): string {
  const bytes = ds.valueBytes(el);
  const unit = el.fromUN ? undefined : UNIT[el.vr];
  if (unit === undefined || ds.littleEndian) return bytes.toString('hex');
  const out: string[] = [];
  for (let o = 0; o + unit <= bytes.length; o += unit) out.push(Buffer.from(bytes.subarray(o, o + unit)).reverse().toString('hex'));
  return out.join('');
}

const isGroupLength = (tag: number) => (tag & 0xffff) === 0;

/** Element by element, items included: the same tags (group lengths aside) with the same values. */
function expectSameValues(a: DataSet, b: DataSet, where: string): void {
  const tagsA = [...a.elements.keys()].filter((t) => !isGroupLength(t));
  const tagsB = [...b.elements.keys()].filter((t) => !isGroupLength(t));
  expect(tagsB.map((t) => t.toString(16)), `${where}: tags`).to.deep.equal(tagsA.map((t) => t.toString(16)));
  for (const tag of tagsA) {
    const ea = a.elements.get(tag)!;
    const eb = b.elements.get(tag)!;
    const at = `${where} (${tag.toString(16).padStart(8, '0')})`;
    if (ea.items || eb.items) {
      expect(eb.items?.length ?? 0, `${at}: items`).to.equal(ea.items?.length ?? 0);
      (ea.items ?? []).forEach((item, i) => expectSameValues(item, eb.items![i]!, `${at}[${i}]`));
      continue;
    }
    if (a.explicitVr && b.explicitVr && !ea.fromUN && !eb.fromUN) expect(eb.vr, `${at}: VR`).to.equal(ea.vr);
    // The sender's value, padded to an even length if it was odd (PS3.5 §7.1.1).
    const va = valueOf(a, ea);
    const vb = valueOf(b, eb);
    if (va !== vb) expect(vb, `${at}: value`).to.equal(ea.length % 2 === 1 ? `${va}00` : va);
  }
}

/** Generated instances covering numbers of every size, tags, a sequence with nested items, private elements. */
function richInstance(transferSyntaxUid: string, sopInstanceUid = generateUid()): Buffer {
  const extra: WriteElement[] = [
    { tag: 0x00080008, vr: 'CS', value: 'ORIGINAL\\PRIMARY\\AXIAL' },
    { tag: 0x00181310, vr: 'US', value: [0, 256, 256, 0] },
    { tag: 0x00189087, vr: 'FD', value: [1000.25] },
    { tag: 0x00189089, vr: 'FD', value: [0.5, -0.25, 1] },
    { tag: 0x00186020, vr: 'SL', value: [-12345] },
    { tag: 0x00189219, vr: 'SS', value: [-7] },
    { tag: 0x00280009, vr: 'AT', value: [0x00181063, 0x00181065] },
    { tag: 0x00090010, vr: 'LO', value: 'PACSNODE TEST' },
    { tag: 0x00091001, vr: 'OB', value: Buffer.from([1, 2, 3, 4, 5, 6]) },
    {
      tag: 0x00081140,
      vr: 'SQ',
      value: [
        [
          { tag: Tags.ReferencedSOPClassUID, vr: 'UI', value: SopClasses.CTImageStorage },
          { tag: Tags.ReferencedSOPInstanceUID, vr: 'UI', value: generateUid() },
          { tag: 0x00081160, vr: 'IS', value: '1\\2\\3' },
        ],
        [
          { tag: Tags.ReferencedSOPClassUID, vr: 'UI', value: SopClasses.MRImageStorage },
          {
            tag: 0x00089215,
            vr: 'SQ',
            value: [[{ tag: 0x00080100, vr: 'SH', value: '121322' }, { tag: 0x00080102, vr: 'SH', value: 'DCM' }]],
          },
        ],
      ],
    },
  ];
  return makeInstance({ transferSyntaxUid, sopInstanceUid, pixelBytes: 6000, extra });
}

// --- A scripted peer (STYLE.md habit 13) ---------------------------------------------------------------------------

interface PeerContext {
  socket: Socket;
  received: Pdu[];
  send(pdu: Pdu): void;
  /** The command sets of complete DIMSE requests arrive here (one P-DATA-TF per PDV in our SCUs). */
  assembler: MessageAssembler;
}

interface ScriptedPeer {
  port: number;
  /** Every PDU received, per connection, in order. */
  connections: Pdu[][];
  close(): Promise<void>;
}

/** A raw TCP peer: `script` is called with each PDU received and answers through `ctx.send`. */
function scriptedPeer(script: (pdu: Pdu, ctx: PeerContext) => void): Promise<ScriptedPeer> {
  const connections: Pdu[][] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const received: Pdu[] = [];
    connections.push(received);
    const framer = new PduFramer({ maxPduLength: 1 << 24 });
    const ctx: PeerContext = {
      socket,
      received,
      send: (pdu) => {
        if (!socket.destroyed) socket.write(encodePdu(pdu));
      },
      assembler: new MessageAssembler(),
    };
    socket.on('data', (chunk: Buffer) => {
      for (const bytes of framer.push(chunk)) {
        const pdu = decodePdu(Buffer.from(bytes));
        received.push(pdu);
        script(pdu, ctx);
        // As a real peer does: the transport closes after an abort, and after the A-RELEASE-RP it waited for.
        if (pdu.type === 'A-ABORT' || pdu.type === 'A-RELEASE-RP') socket.end();
      }
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: (server.address() as { port: number }).port,
        connections,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    });
  });
}

/** The A-ASSOCIATE-AC accepting each proposed context with its first syntax (or the one `choose` picks). */
function acceptAll(rq: AAssociateRq, options: { maxPduLength?: number; choose?: (abstract: string, tss: string[]) => string | undefined } = {}): AAssociateAc {
  return {
    type: 'A-ASSOCIATE-AC',
    protocolVersion: 1,
    calledAeTitle: rq.calledAeTitle,
    callingAeTitle: rq.callingAeTitle,
    applicationContextName: rq.applicationContextName,
    presentationContexts: rq.presentationContexts.map((pc) => {
      const ts = options.choose ? options.choose(pc.abstractSyntax, pc.transferSyntaxes) : pc.transferSyntaxes[0];
      return ts ? { id: pc.id, result: 0, transferSyntax: ts } : { id: pc.id, result: 3 };
    }),
    userInformation: { ...emptyUserInformation(), maxPduLength: options.maxPduLength ?? 16384 },
  };
}

/** The DIMSE requests inside a P-DATA-TF (complete ones only). */
function requestsIn(pdu: Pdu, ctx: PeerContext): { contextId: number; message: DimseMessage }[] {
  if (pdu.type !== 'P-DATA-TF') return [];
  const out: { contextId: number; message: DimseMessage }[] = [];
  for (const pdv of pdu.pdvs) {
    const done = ctx.assembler.push(pdv);
    if (done) out.push({ contextId: done.presentationContextId, message: fromCommandSet(done.command) });
  }
  return out;
}

function sendResponse(ctx: PeerContext, contextId: number, message: DimseMessage, dataset?: Buffer): void {
  const pdvs = [{ presentationContextId: contextId, isCommand: true, isLast: true, data: encodeMessage(message) }];
  if (dataset) pdvs.push({ presentationContextId: contextId, isCommand: false, isLast: true, data: dataset });
  ctx.send({ type: 'P-DATA-TF', pdvs });
}

/** A polite peer: accepts everything, answers C-ECHO, releases. */
function politeScript(pdu: Pdu, ctx: PeerContext): void {
  if (pdu.type === 'A-ASSOCIATE-RQ') ctx.send(acceptAll(pdu));
  else if (pdu.type === 'A-RELEASE-RQ') ctx.send({ type: 'A-RELEASE-RP' });
  for (const { contextId, message } of requestsIn(pdu, ctx)) {
    if (message.type === 'C-ECHO-RQ') sendResponse(ctx, contextId, cEchoRsp(message));
  }
}

function target(port: number, overrides: Partial<OpenAssociationOptions> = {}) {
  return { host: '127.0.0.1', port, callingAet: 'SCU', calledAet: 'PEER', ...overrides };
}

const verification = [{ abstractSyntax: VERIFICATION, transferSyntaxes: [ImplicitVRLittleEndian] }];

async function expectRejection<E extends Error>(promise: Promise<unknown>, type: new (...args: never[]) => E): Promise<E> {
  try {
    await promise;
  } catch (e) {
    expect(e, (e as Error).stack).to.be.instanceOf(type);
    return e as E;
  }
  throw new Error(`expected a ${type.name}`);
}

// ---------------------------------------------------------------------------------------------------------------

describe('Association, requestor role (PS3.8 §9.2)', function () {
  this.timeout(20000);
  const peers: ScriptedPeer[] = [];
  const peer = async (script: (pdu: Pdu, ctx: PeerContext) => void) => {
    const p = await scriptedPeer(script);
    peers.push(p);
    return p;
  };
  afterEach(async () => {
    await Promise.all(peers.splice(0).map((p) => p.close()));
  });

  it('establishes (Sta1 -> Sta4 -> Sta5 -> Sta6) with the accepted contexts and the peer\'s max PDU, then releases', async () => {
    const p = await peer((pdu, ctx) => {
      if (pdu.type === 'A-ASSOCIATE-RQ') {
        ctx.send(acceptAll(pdu, { maxPduLength: 8192, choose: (a, tss) => (a === VERIFICATION ? tss[1] : undefined) }));
      } else if (pdu.type === 'A-RELEASE-RQ') ctx.send({ type: 'A-RELEASE-RP' });
    });
    const association = await openAssociation({
      ...target(p.port),
      presentationContexts: [
        { abstractSyntax: VERIFICATION, transferSyntaxes: [ExplicitVRLittleEndian, ImplicitVRLittleEndian] },
        { abstractSyntax: SopClasses.CTImageStorage, transferSyntaxes: [ExplicitVRLittleEndian] },
      ],
    });
    expect(association.state).to.equal('Sta6');
    expect(association.role).to.equal('requestor');
    expect(association.peerMaxPduLength).to.equal(8192);
    expect([...association.acceptedContexts.values()]).to.deep.equal([
      { id: 1, abstractSyntax: VERIFICATION, transferSyntax: ImplicitVRLittleEndian, requestorIsScu: true, requestorIsScp: false },
    ]);
    const rq = p.connections[0]![0] as AAssociateRq;
    expect(rq.type).to.equal('A-ASSOCIATE-RQ');
    expect(rq.callingAeTitle).to.equal('SCU');
    expect(rq.calledAeTitle).to.equal('PEER');
    expect(rq.presentationContexts.map((pc) => pc.id)).to.deep.equal([1, 3]);
    expect(rq.userInformation.maxPduLength).to.equal(16384);
    expect(rq.userInformation.implementationClassUid).to.be.a('string');
    await association.release();
    expect(association.state).to.equal('Sta1');
    expect(p.connections[0]!.map((x) => x.type)).to.deep.equal(['A-ASSOCIATE-RQ', 'A-RELEASE-RQ']);
    const end = await association.whenClosed();
    expect(end.aborted).to.equal(false);
    expect(end.error).to.equal(undefined);
  });

  it('sends role selection and user identity when asked', async () => {
    const p = await peer(politeScript);
    const association = await openAssociation({
      ...target(p.port),
      presentationContexts: verification,
      roleSelections: [{ sopClassUid: SopClasses.CTImageStorage, scuRole: true, scpRole: true }],
      userIdentity: { identityType: 2, positiveResponseRequested: false, primaryField: Buffer.from('user'), secondaryField: Buffer.from('secret') },
    });
    await association.release();
    const rq = p.connections[0]![0] as AAssociateRq;
    expect(rq.userInformation.roleSelections).to.deep.equal([{ sopClassUid: SopClasses.CTImageStorage, scuRole: true, scpRole: true }]);
    expect(rq.userInformation.userIdentityRq?.primaryField.toString()).to.equal('user');
    expect(rq.userInformation.userIdentityRq?.secondaryField.toString()).to.equal('secret');
  });

  it('rejects with the A-ASSOCIATE-RJ result, source and reason, readably (PS3.8 Table 9-21)', async () => {
    const cases = [
      { rj: { result: 1, source: 1, reason: 3 }, text: 'association rejected (permanent) by the called application (service user): calling AE title not recognized' },
      { rj: { result: 1, source: 1, reason: 7 }, text: 'called AE title not recognized' },
      { rj: { result: 1, source: 2, reason: 2 }, text: "by the peer's UL provider (ACSE): protocol version not supported" },
      { rj: { result: 2, source: 3, reason: 1 }, text: "rejected (transient) by the peer's UL provider (presentation): temporary congestion" },
      { rj: { result: 2, source: 3, reason: 2 }, text: 'local limit exceeded' },
    ] as const;
    for (const { rj, text } of cases) {
      const p = await peer((pdu, ctx) => {
        if (pdu.type === 'A-ASSOCIATE-RQ') ctx.send({ type: 'A-ASSOCIATE-RJ', ...rj });
      });
      const e = await expectRejection(openAssociation({ ...target(p.port), presentationContexts: verification }), AssociationRejectedError);
      expect(e.code).to.equal('ERR_ASSOC_REJECTED');
      expect([e.result, e.source, e.reason]).to.deep.equal([rj.result, rj.source, rj.reason]);
      expect(e.message).to.contain(text);
    }
    expect(describeRejection({ result: 1, source: 1, reason: 9 })).to.contain('reason 9');
  });

  it('rejects with ERR_ASSOC_CONNECT when the connection is refused, and on bad options before connecting', async () => {
    const port = await freePort();
    const e = await expectRejection(openAssociation({ ...target(port), presentationContexts: verification }), AssociationError);
    expect(e.code).to.equal('ERR_ASSOC_CONNECT');
    expect(e.message).to.contain('ECONNREFUSED');
    for (const bad of [{ port: 0 }, { port: 70000 }, { callingAet: 'A-TITLE-LONGER-THAN-16' }, { calledAet: '' }]) {
      const err = await expectRejection(openAssociation({ ...target(port), presentationContexts: verification, ...bad }), AssociationError);
      expect(err.code).to.equal('ERR_ASSOC_CONNECT');
    }
    const none = await expectRejection(openAssociation({ ...target(port), presentationContexts: [] }), AssociationError);
    expect(none.message).to.contain('presentation context');
  });

  it('gives up on a connection that does not open within the connect timeout (ERR_ASSOC_CONNECT_TIMEOUT)', async () => {
    let socket: Socket | undefined;
    const e = await expectRejection(
      openAssociation({
        ...target(104),
        presentationContexts: verification,
        timeouts: { connectMs: 50 },
        // A transport that never connects: what a black-holed address looks like.
        transport: {
          description: 'nowhere:104',
          open: () => (socket = new Socket()),
        },
      }),
      AssociationError,
    );
    expect(e.code).to.equal('ERR_ASSOC_CONNECT_TIMEOUT');
    expect(e.message).to.contain('nowhere:104');
    expect(socket!.destroyed).to.equal(true);
  });

  it('aborts when no A-ASSOCIATE-AC comes within the response timeout (ERR_ASSOC_TIMEOUT)', async () => {
    const p = await peer(() => undefined); // silent
    const e = await expectRejection(openAssociation({ ...target(p.port), presentationContexts: verification, timeouts: { responseMs: 100 } }), AssociationError);
    expect(e.code).to.equal('ERR_ASSOC_TIMEOUT');
    await new Promise((r) => setTimeout(r, 50));
    const abort = p.connections[0]!.at(-1);
    expect(abort).to.deep.equal({ type: 'A-ABORT', source: 0, reason: 0 });
  });

  it('reports an A-ABORT received instead of an A-ASSOCIATE-AC, user or provider source', async () => {
    const user = await peer((pdu, ctx) => pdu.type === 'A-ASSOCIATE-RQ' && ctx.send({ type: 'A-ABORT', source: 0, reason: 0 }));
    const e1 = await expectRejection(openAssociation({ ...target(user.port), presentationContexts: verification }), AssociationAbortedError);
    expect(e1.origin).to.equal('peer-user');
    expect(e1.code).to.equal('ERR_ASSOC_ABORTED');
    const provider = await peer((pdu, ctx) => pdu.type === 'A-ASSOCIATE-RQ' && ctx.send({ type: 'A-ABORT', source: 2, reason: 2 }));
    const e2 = await expectRejection(openAssociation({ ...target(provider.port), presentationContexts: verification }), AssociationAbortedError);
    expect(e2.origin).to.equal('peer-provider');
    expect(e2.reason).to.equal(2);
    expect(e2.message).to.contain('unexpected PDU');
  });

  it('treats a peer that closes before answering as a closed connection', async () => {
    const p = await peer((pdu, ctx) => pdu.type === 'A-ASSOCIATE-RQ' && ctx.socket.destroy());
    const e = await expectRejection(openAssociation({ ...target(p.port), presentationContexts: verification }), AssociationError);
    expect(e.code).to.equal('ERR_ASSOC_CLOSED');
  });

  it('answers an unexpected PDU in Sta5 with a provider A-ABORT (AA-8)', async () => {
    const p = await peer((pdu, ctx) => pdu.type === 'A-ASSOCIATE-RQ' && ctx.send({ type: 'A-RELEASE-RP' }));
    const e = await expectRejection(openAssociation({ ...target(p.port), presentationContexts: verification }), AssociationAbortedError);
    expect(e.origin).to.equal('local-provider');
    await new Promise((r) => setTimeout(r, 50));
    expect(p.connections[0]!.at(-1)).to.deep.equal({ type: 'A-ABORT', source: 2, reason: 2 });
  });

  it('resolves a release collision on the requestor side (Sta7 -> Sta9 -> Sta11 -> Sta1)', async () => {
    const p = await peer((pdu, ctx) => {
      if (pdu.type === 'A-ASSOCIATE-RQ') ctx.send(acceptAll(pdu));
      // The peer releases too, as ours arrives; then answers our A-RELEASE-RP's counterpart.
      else if (pdu.type === 'A-RELEASE-RQ') ctx.send({ type: 'A-RELEASE-RQ' });
      else if (pdu.type === 'A-RELEASE-RP') ctx.send({ type: 'A-RELEASE-RP' });
    });
    const association = await openAssociation({ ...target(p.port), presentationContexts: verification });
    const states: string[] = [];
    association.on('transition', (t) => states.push(t.to));
    await association.release();
    expect(states).to.deep.equal(['Sta7', 'Sta9', 'Sta11', 'Sta1']);
    expect(p.connections[0]!.map((x) => x.type)).to.deep.equal(['A-ASSOCIATE-RQ', 'A-RELEASE-RQ', 'A-RELEASE-RP']);
    expect((await association.whenClosed()).error).to.equal(undefined);
  });

  it('resolves a release collision on both sides between our requestor and our acceptor (Sta10 -> Sta12 -> Sta13)', async () => {
    let acceptor: Association | undefined;
    const server = new UlServer({
      maxPduLength: 16384,
      artimTimeoutMs: 5000,
      idleTimeoutMs: 0,
      onAssociation: (a) => {
        acceptor = a;
        a.once('associate-request', (rq) => a.accept(acceptAll(rq)));
      },
    });
    const port = await server.listen(0, '127.0.0.1');
    try {
      const requestor = await openAssociation({ ...target(port), presentationContexts: verification });
      await new Promise((r) => setImmediate(r));
      expect(acceptor!.state).to.equal('Sta6');
      const acceptorStates: string[] = [];
      const requestorStates: string[] = [];
      acceptor!.on('transition', (t) => acceptorStates.push(t.to));
      requestor.on('transition', (t) => requestorStates.push(t.to));
      await Promise.all([acceptor!.release(), requestor.release()]);
      await acceptor!.whenClosed();
      expect(requestorStates).to.deep.equal(['Sta7', 'Sta9', 'Sta11', 'Sta1']);
      expect(acceptorStates).to.deep.equal(['Sta7', 'Sta10', 'Sta12', 'Sta13', 'Sta1']);
    } finally {
      await server.close();
    }
  });

  it('answers a release asked by the acceptor once idle, and refuses to release an association not established', async () => {
    const p = await peer((pdu, ctx) => {
      if (pdu.type === 'A-ASSOCIATE-RQ') {
        ctx.send(acceptAll(pdu));
        ctx.send({ type: 'A-RELEASE-RQ' });
      }
    });
    const association = await openAssociation({ ...target(p.port), presentationContexts: verification });
    new ScuSession(association);
    const end = await association.whenClosed();
    expect(end.error).to.equal(undefined);
    expect(p.connections[0]!.map((x) => x.type)).to.deep.equal(['A-ASSOCIATE-RQ', 'A-RELEASE-RP']);
    const e = await expectRejection(association.release(), AssociationError);
    expect(e.code).to.equal('ERR_ASSOC_STATE');
  });

  it('aborts on request (A-ABORT source 0) and on an invalid PDU from the peer (source 2)', async () => {
    const p = await peer(politeScript);
    const a1 = await openAssociation({ ...target(p.port), presentationContexts: verification });
    a1.abort();
    const end1 = await a1.whenClosed();
    expect(end1.aborted).to.equal(true);
    expect((end1.error as AssociationAbortedError).origin).to.equal('local-user');
    expect(p.connections[0]!.at(-1)).to.deep.equal({ type: 'A-ABORT', source: 0, reason: 0 });

    const q = await peer((pdu, ctx) => {
      if (pdu.type === 'A-ASSOCIATE-RQ') {
        ctx.send(acceptAll(pdu));
        // PDU type 09H does not exist. (Sent apart: the framer drops a chunk's complete PDUs when its next header is bad.)
        setTimeout(() => ctx.socket.write(Buffer.from([0x09, 0, 0, 0, 0, 0])), 20);
      }
    });
    const a2 = await openAssociation({ ...target(q.port), presentationContexts: verification });
    const end2 = await a2.whenClosed();
    expect(end2.aborted).to.equal(true);
    expect((end2.error as AssociationAbortedError).origin).to.equal('local-provider');
    expect(q.connections[0]!.at(-1)).to.deep.equal({ type: 'A-ABORT', source: 2, reason: 1 });
  });
});

describe('DIMSE SCU session', function () {
  this.timeout(20000);
  const peers: ScriptedPeer[] = [];
  const peer = async (script: (pdu: Pdu, ctx: PeerContext) => void) => {
    const p = await scriptedPeer(script);
    peers.push(p);
    return p;
  };
  afterEach(async () => {
    await Promise.all(peers.splice(0).map((p) => p.close()));
  });

  it('echoes a scripted peer, Message IDs counting from 1', async () => {
    const p = await peer(politeScript);
    expect(await echo(target(p.port))).to.equal(Status.Success);
    const pdata = p.connections[0]!.filter((x) => x.type === 'P-DATA-TF');
    const rq = decodeMessage((pdata[0] as { pdvs: { data: Buffer }[] }).pdvs[0]!.data) as CEchoRq;
    expect(rq).to.deep.equal({ type: 'C-ECHO-RQ', MessageID: 1, AffectedSOPClassUID: VERIFICATION });
  });

  it('fails an echo the peer does not accept the Verification SOP Class for (ERR_SCU_NOT_ACCEPTED)', async () => {
    const p = await peer((pdu, ctx) => {
      if (pdu.type === 'A-ASSOCIATE-RQ') ctx.send(acceptAll(pdu, { choose: () => undefined }));
      else if (pdu.type === 'A-RELEASE-RQ') ctx.send({ type: 'A-RELEASE-RP' });
    });
    const e = await expectRejection(echo(target(p.port)), ScuError);
    expect(e.code).to.equal('ERR_SCU_NOT_ACCEPTED');
  });

  it('aborts when the response does not come within the DIMSE timeout (ERR_SCU_TIMEOUT)', async () => {
    const p = await peer((pdu, ctx) => pdu.type === 'A-ASSOCIATE-RQ' && ctx.send(acceptAll(pdu)));
    const e = await expectRejection(echo({ ...target(p.port), dimseTimeoutMs: 100 }), ScuError);
    expect(e.code).to.equal('ERR_SCU_TIMEOUT');
    await new Promise((r) => setTimeout(r, 50));
    expect(p.connections[0]!.at(-1)).to.deep.equal({ type: 'A-ABORT', source: 0, reason: 0 });
  });

  it('fails the request under way when the peer aborts (ERR_SCU_CLOSED, caused by the abort)', async () => {
    const p = await peer((pdu, ctx) => {
      if (pdu.type === 'A-ASSOCIATE-RQ') ctx.send(acceptAll(pdu));
      else if (pdu.type === 'P-DATA-TF') ctx.send({ type: 'A-ABORT', source: 0, reason: 0 });
    });
    const e = await expectRejection(echo(target(p.port)), ScuError);
    expect(e.code).to.equal('ERR_SCU_CLOSED');
    expect(e.cause).to.be.instanceOf(AssociationAbortedError);
    expect(e.message).to.contain('aborted by the peer');
  });

  it('hands pending responses and their identifiers over, then resolves with the final one; times out between pendings', async () => {
    const p = await peer((pdu, ctx) => {
      if (pdu.type === 'A-ASSOCIATE-RQ') ctx.send(acceptAll(pdu));
      else if (pdu.type === 'A-RELEASE-RQ') ctx.send({ type: 'A-RELEASE-RP' });
      for (const { contextId, message } of requestsIn(pdu, ctx)) {
        const rq = message as CFindRq;
        sendResponse(ctx, contextId, cFindRsp(rq, Status.Pending), Buffer.from('match-1\0'));
        setTimeout(() => {
          sendResponse(ctx, contextId, cFindRsp(rq, Status.Pending), Buffer.from('match-2\0'));
          sendResponse(ctx, contextId, cFindRsp(rq, Status.Success));
        }, 30);
      }
    });
    const association = await openAssociation({
      ...target(p.port),
      presentationContexts: [{ abstractSyntax: SopClasses.StudyRootFind, transferSyntaxes: [ImplicitVRLittleEndian] }],
    });
    // A timeout longer than the gap between pending responses, but not than the whole operation: it is per response.
    const session = new ScuSession(association, { timeoutMs: 1000 });
    const context = session.findContext(SopClasses.StudyRootFind)!;
    const pending: string[] = [];
    const rq: CFindRq = { type: 'C-FIND-RQ', MessageID: session.nextMessageId(), AffectedSOPClassUID: SopClasses.StudyRootFind, Priority: 0 };
    const final = await session.request(context.id, rq, Buffer.from('query\0'), {
      onPending: (r) => pending.push(r.dataset!.toString('latin1')),
    });
    expect(pending).to.deep.equal(['match-1\0', 'match-2\0']);
    expect((final.message as { Status: number }).Status).to.equal(Status.Success);
    expect(final.dataset).to.equal(undefined);
    await session.release();
  });

  it('fragments what it sends to the peer\'s maximum PDU length', async () => {
    let largest = 0;
    const p = await peer((pdu, ctx) => {
      if (pdu.type === 'A-ASSOCIATE-RQ') ctx.send(acceptAll(pdu, { maxPduLength: 4096 }));
      else if (pdu.type === 'A-RELEASE-RQ') ctx.send({ type: 'A-RELEASE-RP' });
      else if (pdu.type === 'P-DATA-TF') {
        largest = Math.max(largest, pdu.pdvs.reduce((n, pdv) => n + 6 + pdv.data.length, 0));
        for (const pdv of pdu.pdvs) {
          const done = ctx.assembler.push(pdv);
          if (done && done.dataset) {
            sendResponse(ctx, done.presentationContextId, cStoreRsp(fromCommandSet(done.command) as CStoreRq, Status.Success));
          }
        }
      }
    });
    const file = makeInstance({ pixelBytes: 50000 });
    const summary = await storeInstances(target(p.port), [{ bytes: file, name: 'big' }]);
    expect(summary.sent, JSON.stringify(summary.results)).to.equal(1);
    expect(largest).to.be.at.most(4096);
    expect(largest).to.be.greaterThan(4000);
  });
  it('pipelines C-STOREs up to the Asynchronous Operations Window the peer agreed to (PS3.7 D.3.3.3)', async () => {
    const waves: number[] = [];
    let held: { contextId: number; rq: CStoreRq }[] = [];
    const p = await peer((pdu, ctx) => {
      if (pdu.type === 'A-ASSOCIATE-RQ') {
        const ac = acceptAll(pdu);
        // We were offered 5; we agree to 3 invoked at once.
        expect(pdu.userInformation.asyncOpsWindow).to.deep.equal({ maxOperationsInvoked: 5, maxOperationsPerformed: 1 });
        ac.userInformation.asyncOpsWindow = { maxOperationsInvoked: 3, maxOperationsPerformed: 1 };
        ctx.send(ac);
      } else if (pdu.type === 'A-RELEASE-RQ') ctx.send({ type: 'A-RELEASE-RP' });
      for (const { contextId, message } of requestsIn(pdu, ctx)) {
        held.push({ contextId, rq: message as CStoreRq });
        // Answer only once three requests are outstanding (or the last one is in): a window of 1 would time out.
        if (held.length === 3 || (waves.reduce((a, b) => a + b, 0) + held.length === 7)) {
          waves.push(held.length);
          for (const h of held.reverse()) sendResponse(ctx, h.contextId, cStoreRsp(h.rq, Status.Success));
          held = [];
        }
      }
    });
    const inputs = Array.from({ length: 7 }, (_, i) => ({ bytes: makeInstance(), name: `w${i}` }));
    const summary = await storeInstances({ ...target(p.port), dimseTimeoutMs: 2000 }, inputs, { window: 5 });
    expect(summary.results.map((r) => r.outcome)).to.deep.equal(Array(7).fill('sent'));
    expect(summary.results.map((r) => r.source)).to.deep.equal(inputs.map((i) => i.name));
    expect(waves).to.deep.equal([3, 3, 1]);
  });
});

describe('Store SCU planning and conversion', () => {
  it('proposes each syntax alone per SOP Class, plus the little endian ones not proposed for conversions', () => {
    const ct = SopClasses.CTImageStorage;
    const mr = SopClasses.MRImageStorage;
    const plan = planContexts([
      { sopClassUid: ct, transferSyntaxUid: ExplicitVRLittleEndian },
      { sopClassUid: ct, transferSyntaxUid: ExplicitVRBigEndian },
      { sopClassUid: ct, transferSyntaxUid: ExplicitVRLittleEndian },
      { sopClassUid: mr, transferSyntaxUid: '1.2.840.10008.1.2.4.50' },
      { sopClassUid: SopClasses.SecondaryCaptureImageStorage, transferSyntaxUid: ImplicitVRLittleEndian },
    ]);
    expect(plan).to.deep.equal([
      [
        { abstractSyntax: ct, transferSyntaxes: [ExplicitVRLittleEndian] },
        { abstractSyntax: ct, transferSyntaxes: [ExplicitVRBigEndian] },
        { abstractSyntax: ct, transferSyntaxes: [ImplicitVRLittleEndian] },
        { abstractSyntax: mr, transferSyntaxes: ['1.2.840.10008.1.2.4.50'] },
        { abstractSyntax: SopClasses.SecondaryCaptureImageStorage, transferSyntaxes: [ImplicitVRLittleEndian] },
        { abstractSyntax: SopClasses.SecondaryCaptureImageStorage, transferSyntaxes: [ExplicitVRLittleEndian] },
      ],
    ]);
    // 100 SOP classes with two syntaxes each: 200 contexts, over two associations of at most 128.
    const many = Array.from({ length: 100 }, (_, i) => ({ sopClassUid: `1.2.3.${i}`, transferSyntaxUid: ExplicitVRLittleEndian }));
    const batches = planContexts(many);
    expect(batches.map((b) => b.length)).to.deep.equal([128, 72]);
  });

  it('converts implicit <-> explicit little endian and big endian -> little endian, keeping every value', () => {
    for (const from of [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian]) {
      const source = readPart10(richInstance(from));
      for (const to of [ExplicitVRLittleEndian, ImplicitVRLittleEndian]) {
        if (!canTranscode(from, to)) continue;
        const bytes = transcodeDataset(source, to);
        const back = readPart10(bytes);
        expect(back.transferSyntaxUid, `${from} -> ${to}`).to.equal(to); // guessed from the bytes: no meta header
        expectSameValues(source.dataset, back.dataset, `${transferSyntax(from).name} -> ${transferSyntax(to).name}`);
      }
    }
    expect(canTranscode('1.2.840.10008.1.2.4.50', ExplicitVRLittleEndian)).to.equal(false);
    expect(canTranscode(ExplicitVRLittleEndian, ExplicitVRBigEndian)).to.equal(false);
    expect(canTranscode(DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian)).to.equal(true);
  });
});

describe('SCUs against DCMTK storescp', function () {
  this.timeout(120000);
  let dir: string;
  before(function () {
    if (!HAS_DCMTK) this.skip(); // dcmtk is installed by .ci/run
    dir = mkdtempSync(join(tmpdir(), 'pacsnode-scu-'));
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('echoes storescp', async () => {
    const scp = await startStorescp([]);
    try {
      expect(await echo(target(scp.port, { calledAet: 'STORESCP' }))).to.equal(Status.Success);
    } finally {
      scp.stop();
    }
  });

  it('sends generated files in their own syntax over one association: storescp receives exactly their datasets', async () => {
    const scp = await startStorescp(['+xa']);
    try {
      const syntaxes = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian];
      const files = syntaxes.map((ts, i) => {
        const path = join(dir, `own-${i}.dcm`);
        writeFileSync(path, richInstance(ts));
        return path;
      });
      const summary = await storeInstances(target(scp.port, { calledAet: 'STORESCP' }), files);
      expect(summary.associations).to.equal(1);
      expect(summary.sent, JSON.stringify(summary.results, null, 1)).to.equal(files.length);
      for (const result of summary.results) {
        expect(result.converted).to.equal(false);
        const source = readFileSync(result.source);
        expect(datasetBytes(writtenFile(scp.dir, result.sopInstanceUid!)).equals(datasetBytes(source)), result.source).to.equal(true);
      }
    } finally {
      scp.stop();
    }
  });

  it('sends the pydicom corpus unchanged to storescp +xa, each dataset bit for bit', async function () {
    if (!existsSync(CORPUS)) this.skip(); // python3-pydicom is installed by .ci/run
    const scp = await startStorescp(['+xa']);
    try {
      const files = readdirSync(CORPUS).filter((f) => f.endsWith('.dcm')).sort().map((f) => CORPUS + f);
      const summary = await storeInstances(target(scp.port, { calledAet: 'STORESCP' }), files);
      expect(summary.associations).to.equal(1);
      // Several corpus files are one instance in several syntaxes: storescp keeps the last one received.
      const last = new Map<string, StoreFileResult>();
      for (const r of summary.results) if (r.outcome === 'sent') last.set(r.sopInstanceUid!, r);
      for (const r of last.values()) {
        expect(r.converted, r.source).to.equal(false);
        let expected = datasetBytes(readFileSync(r.source));
        if (expected.length % 2 === 1 && r.transferSyntaxUid === DeflatedExplicitVRLittleEndian) expected = Buffer.concat([expected, Buffer.alloc(1)]);
        expect(datasetBytes(writtenFile(scp.dir, r.sopInstanceUid!)).equals(expected), r.source).to.equal(true);
      }
      expect(summary.sent, 'corpus files sent').to.be.greaterThan(50);
      // What was not sent could not be: truncated, or no SOP Class/Instance UID, or not DICOM at all.
      for (const r of summary.results.filter((x) => x.outcome !== 'sent')) {
        expect(r.message, r.source).to.match(/truncated|no SOP (Class|Instance) UID|not a DICOM file/);
      }
    } finally {
      scp.stop();
    }
  });

  it('converts to implicit VR little endian for storescp +xi, values intact; compressed files fail clearly, the others go on', async function () {
    const scp = await startStorescp(['+xi']);
    try {
      const generated = [ExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian].map((ts, i) => {
        const path = join(dir, `xi-${i}.dcm`);
        writeFileSync(path, richInstance(ts));
        return path;
      });
      const corpus = existsSync(CORPUS) ? readdirSync(CORPUS).filter((f) => f.endsWith('.dcm')).sort().map((f) => CORPUS + f) : [];
      const summary = await storeInstances(target(scp.port, { calledAet: 'STORESCP' }), [...generated, ...corpus]);
      expect(summary.associations).to.equal(1);
      const last = new Map<string, StoreFileResult>();
      for (const r of summary.results) if (r.outcome === 'sent') last.set(r.sopInstanceUid!, r);
      let converted = 0;
      for (const r of last.values()) {
        expect(r.sentTransferSyntaxUid).to.equal(ImplicitVRLittleEndian);
        const source = readFileSync(r.source);
        const written = writtenFile(scp.dir, r.sopInstanceUid!);
        if (!r.converted) {
          expect(datasetBytes(written).equals(datasetBytes(source)), r.source).to.equal(true);
          continue;
        }
        converted++;
        const received = readPart10(written);
        expect(received.transferSyntaxUid).to.equal(ImplicitVRLittleEndian);
        expectSameValues(readPart10(source).dataset, received.dataset, r.source);
      }
      for (const path of generated) {
        const r = summary.results.find((x) => x.source === path)!;
        expect(r.outcome, r.message).to.equal('sent');
      }
      expect(converted).to.be.at.least(corpus.length > 0 ? 10 : 2);
      for (const r of summary.results) {
        if (r.transferSyntaxUid && transferSyntax(r.transferSyntaxUid).encapsulated) {
          expect(r.outcome, r.source).to.equal('failed');
          expect(r.message, r.source).to.contain('compressed transcoding is not available yet');
        }
      }
    } finally {
      scp.stop();
    }
  });

  it('converts implicit to explicit VR little endian for a storescp that takes only the latter', async function () {
    const config = join(dir, 'explicit-only.cfg');
    writeFileSync(
      config,
      [
        '[[TransferSyntaxes]]',
        '[ExplicitOnly]',
        'TransferSyntax1 = LittleEndianExplicit',
        '[[PresentationContexts]]',
        '[Contexts]',
        'PresentationContext1 = CTImageStorage\\ExplicitOnly',
        'PresentationContext2 = MRImageStorage\\ExplicitOnly',
        '[[Profiles]]',
        '[Explicit]',
        'PresentationContexts = Contexts',
        '',
      ].join('\n'),
    );
    const scp = await startStorescp(['-xf', config, 'Explicit']);
    try {
      const inputs = [join(dir, 'implicit.dcm'), join(dir, 'bigendian.dcm')];
      writeFileSync(inputs[0]!, richInstance(ImplicitVRLittleEndian));
      writeFileSync(inputs[1]!, richInstance(ExplicitVRBigEndian));
      if (existsSync(CORPUS)) inputs.push(`${CORPUS}MR_small_implicit.dcm`, `${CORPUS}MR_small_bigendian.dcm`);
      const summary = await storeInstances(target(scp.port, { calledAet: 'STORESCP' }), inputs);
      for (const r of summary.results) {
        expect(r.outcome, `${r.source}: ${r.message}`).to.equal('sent');
        expect(r.converted).to.equal(true);
        expect(r.sentTransferSyntaxUid).to.equal(ExplicitVRLittleEndian);
        const received = readPart10(writtenFile(scp.dir, r.sopInstanceUid!));
        expect(received.transferSyntaxUid).to.equal(ExplicitVRLittleEndian);
        expectSameValues(readPart10(readFileSync(r.source)).dataset, received.dataset, r.source);
      }
    } finally {
      scp.stop();
    }
  });

  it('reports the association rejection of storescp --refuse as a typed error', async () => {
    const scp = await startStorescp(['--refuse']);
    try {
      const e = await expectRejection(echo(target(scp.port, { calledAet: 'STORESCP' })), AssociationRejectedError);
      expect(e.result).to.equal(1);
      expect(e.source).to.equal(1);
      const e2 = await expectRejection(storeInstances(target(scp.port, { calledAet: 'STORESCP' }), [{ bytes: makeInstance() }]), AssociationRejectedError);
      expect(e2.code).to.equal('ERR_ASSOC_REJECTED');
    } finally {
      scp.stop();
    }
  });

  it('fails the file under way and the rest when storescp aborts the association (--abort-after)', async () => {
    const scp = await startStorescp(['--abort-after']);
    try {
      const inputs = [0, 1, 2].map(() => ({ bytes: makeInstance() }));
      const summary = await storeInstances(target(scp.port, { calledAet: 'STORESCP' }), inputs);
      expect(summary.failed).to.equal(3);
      expect(summary.results[0]!.message).to.contain('aborted by the peer');
      expect(summary.results[1]!.message).to.match(/^not sent: .*aborted by the peer/);
    } finally {
      scp.stop();
    }
  });
});

describe('SCUs against pacsnode', function () {
  this.timeout(60000);
  let t: TestContext;
  let server: DicomScpServer;
  let port: number;
  let dir: string;

  before(async () => {
    t = await tempContext({ DicomAet: 'PACSNODE', DicomCheckCalledAet: true });
    // A small Maximum Length on the server side: our fragments must fit it (its framer aborts otherwise).
    server = new DicomScpServer(createDicomHandlers(t.ctx), { aet: 'PACSNODE', maxPduLength: 4096, idleTimeoutMs: 30000 });
    port = await server.listen(0, '127.0.0.1');
    dir = mkdtempSync(join(tmpdir(), 'pacsnode-scu-'));
  });
  after(async () => {
    await server?.close(1000);
    await t?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const pacsnode = (calledAet = 'PACSNODE') => target(port, { calledAet });

  it('echoes pacsnode', async () => {
    expect(await echo(pacsnode())).to.equal(Status.Success);
  });

  it('gets the typed rejection of a called AE title pacsnode does not answer to (DicomCheckCalledAet)', async () => {
    const e = await expectRejection(echo(pacsnode('SOMEONE-ELSE')), AssociationRejectedError);
    expect([e.result, e.source, e.reason]).to.deep.equal([1, 1, 7]);
    expect(e.message).to.contain('called AE title not recognized');
  });

  it('stores many instances over one association, fragmented to pacsnode\'s 4 KB PDUs, byte-identical', async () => {
    const files = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian].flatMap((ts) =>
      Array.from({ length: 3 }, () => makeInstance({ transferSyntaxUid: ts, pixelBytes: 20000, patientId: 'SCU-PACSNODE' })),
    );
    const before = t.ctx.index.statistics().countInstances;
    const summary = await storeInstances(pacsnode(), files.map((bytes, i) => ({ bytes, name: `gen${i}` })));
    expect(summary.sent, JSON.stringify(summary.results, null, 1)).to.equal(files.length);
    expect(summary.associations).to.equal(1);
    expect(t.ctx.index.statistics().countInstances).to.equal(before + files.length);
    for (const file of files) {
      const sop = readPart10(file).dataset.string(Tags.SOPInstanceUID)!;
      const [row] = t.ctx.index.lookup(3, [{ tag: Tags.SOPInstanceUID, level: 3, kind: 'equal', value: sop, caseSensitive: true }]);
      const stored = await t.ctx.store.readDicom(row!.publicId);
      expect(datasetBytes(stored).equals(datasetBytes(file))).to.equal(true);
    }
  });

  it('reports each file\'s status: success, warning, duplicate (already stored) and failure, without stopping', async () => {
    const statuses = [Status.Success, Status.CoercionOfDataElements, Status.DuplicateSOPInstance, Status.OutOfResources, Status.Success];
    const uids = statuses.map(() => generateUid());
    const base = createDicomHandlers(t.ctx);
    const handlers: DicomHandlers = {
      ...base,
      policy: { ...base.policy, acceptAssociation: () => ({ accept: true }) },
      store: {
        store: async (request) => {
          request.dataset.resume();
          return statuses[uids.indexOf(request.sopInstanceUid)] ?? Status.ProcessingFailure;
        },
      },
    };
    const custom = new DicomScpServer(handlers, { aet: 'CUSTOM', maxPduLength: 16384, idleTimeoutMs: 30000 });
    const customPort = await custom.listen(0, '127.0.0.1');
    try {
      const inputs = uids.map((uid) => ({ bytes: makeInstance({ sopInstanceUid: uid }), name: uid }));
      const summary = await storeInstances(target(customPort), inputs);
      expect(summary.results.map((r) => r.outcome)).to.deep.equal(['sent', 'warning', 'already-stored', 'failed', 'sent']);
      expect(summary.results.map((r) => r.status)).to.deep.equal(statuses);
      expect(summary.results[3]!.message).to.contain('A700');
      expect([summary.sent, summary.warnings, summary.alreadyStored, summary.failed]).to.deep.equal([3, 1, 1, 1]);
    } finally {
      await custom.close(1000);
    }
  });

  it('fails what cannot be sent (not DICOM, missing file) and sends the rest', async () => {
    const good = join(dir, 'good.dcm');
    writeFileSync(good, makeInstance());
    const text = join(dir, 'notes.txt');
    writeFileSync(text, 'not a DICOM file at all');
    const unknownClass = { bytes: makeInstance({ sopClassUid: '1.2.826.0.1.3680043.10.1234.1' }), name: 'unknown class' };
    const summary = await storeInstances(pacsnode(), [text, join(dir, 'missing.dcm'), good, { path: text, optional: true }, unknownClass]);
    expect(summary.results.map((r) => r.outcome)).to.deep.equal(['failed', 'failed', 'sent', 'skipped', 'failed']);
    expect(summary.results[0]!.message).to.contain('not a DICOM file');
    expect(summary.results[1]!.message).to.contain('cannot read');
    expect(summary.results[4]!.message).to.equal('SOP Class 1.2.826.0.1.3680043.10.1234.1 is not supported by the peer');
  });

  describe('CLI: pacsnode echo and pacsnode store (bin/pacsnode, built by `npm test`)', () => {
    before(function () {
      if (!existsSync(join(ROOT, 'dist/cli/store.js'))) throw new Error('dist/ is not built: run `npm run build` (npm test does)');
    });

    /** Runs bin/pacsnode without blocking the event loop (the server under test lives in this process). */
    function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
      return new Promise((resolve) => {
        const child = spawn(process.execPath, [join(ROOT, 'bin/pacsnode'), ...args], {
          env: { ...process.env, PACSNODE_LOG_LEVEL: 'error' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
    }

    it('echo: exit 0 and the status on success; 2 when refused, rejected, or misused', async () => {
      const bad = [['echo', '127.0.0.1'], ['echo', '127.0.0.1', 'http'], ['echo', '--aet', 'WAY-TOO-LONG-AE-TITLE', '127.0.0.1', '104']];
      const [ok, rejected, refused, ...misused] = await Promise.all([
        cli(['echo', '--aec', 'PACSNODE', '127.0.0.1', String(port)]),
        cli(['echo', '--aec', 'NOBODY', '127.0.0.1', String(port)]),
        freePort().then((free) => cli(['echo', '127.0.0.1', String(free)])),
        ...bad.map((args) => cli(args)),
      ]);
      expect(ok!.code, ok!.stderr).to.equal(0);
      expect(ok!.stdout).to.match(/^C-ECHO PACSNODE -> PACSNODE@127\.0\.0\.1:\d+: 0000 Success/);
      expect(rejected!.code).to.equal(2);
      expect(rejected!.stderr).to.contain('called AE title not recognized');
      expect(refused!.code).to.equal(2);
      expect(refused!.stderr).to.contain('ECONNREFUSED');
      misused.forEach((r, i) => expect(r.code, bad[i]!.join(' ')).to.equal(2));
    });

    it('store: walks folders (--recursive), skips what is not DICOM there, prints the summary; exit 0', async () => {
      const tree = join(dir, 'tree');
      mkdirSync(join(tree, 'sub'), { recursive: true });
      writeFileSync(join(tree, 'a.dcm'), makeInstance({ patientId: 'CLI' }));
      writeFileSync(join(tree, 'README'), 'a readme');
      writeFileSync(join(tree, 'sub', 'b'), makeInstance({ patientId: 'CLI', transferSyntaxUid: ImplicitVRLittleEndian }));
      writeFileSync(join(tree, 'sub', 'c.dcm'), makeInstance({ patientId: 'CLI', transferSyntaxUid: ExplicitVRBigEndian }));
      const before = t.ctx.index.statistics().countInstances;
      const flat = await cli(['store', '--aec', 'PACSNODE', '127.0.0.1', String(port), tree]);
      expect(flat.code, flat.stderr).to.equal(0);
      expect(flat.stdout).to.match(/^sent 1, failed 0, already stored 0, skipped 1: /);
      const r = await cli(['store', '--aec', 'PACSNODE', '--recursive', '127.0.0.1', String(port), tree]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.match(/^sent 3, failed 0, already stored 0, skipped 1: [\d.]+ MB in [\d.]+ s \(/);
      expect(r.stderr).to.contain('[4/4]'); // one progress line per file when stderr is not a terminal
      expect(t.ctx.index.statistics().countInstances).to.equal(before + 3);
    });

    it('store: exit 1 when a file fails, 2 when the peer is unreachable or the paths do not exist', async () => {
      const good = join(dir, 'cli-good.dcm');
      const bad = join(dir, 'cli-bad.dcm');
      writeFileSync(good, makeInstance());
      writeFileSync(bad, 'definitely not DICOM');
      const [partly, refused, missing] = await Promise.all([
        cli(['store', '--aec', 'PACSNODE', '127.0.0.1', String(port), good, bad]),
        freePort().then((free) => cli(['store', '127.0.0.1', String(free), good])),
        cli(['store', '127.0.0.1', String(port), join(dir, 'nothing-here')]),
      ]);
      expect(partly!.code).to.equal(1);
      expect(partly!.stdout).to.match(/^sent 1, failed 1, already stored 0, skipped 0: /);
      expect(partly!.stderr).to.contain(`FAILED ${bad}: not a DICOM file`);
      expect(refused!.code).to.equal(2);
      expect(refused!.stderr).to.contain('ECONNREFUSED');
      expect(missing!.code).to.equal(2);
      expect(missing!.stderr).to.contain('no such file or folder');
    });
  });
});
