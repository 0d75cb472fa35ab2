/**
 * The SCU side of `/modalities` over real peers on loopback: `DicomAssociationCloseDelay` (the store jobs'
 * associations kept open for the next job, counted in DCMTK storescp's log) and a silent DICOM node failing within
 * the DIMSE timeout (a TCP peer that accepts and never answers).
 */
import { expect } from 'chai';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPart10 } from '../src/dicom/reader.js';
import { Tags } from '../src/dicom/tag.js';
import { ImplicitVRLittleEndian } from '../src/dicom/transfer-syntax.js';
import { SopClasses } from '../src/dicom/uids.js';
import { AssociationError, type Association } from '../src/net/association.js';
import { openAssociation } from '../src/net/connect.js';
import { emptyUserInformation } from '../src/net/pdu/types.js';
import { UlServer } from '../src/net/server.js';
import { makeInstance } from './helpers/factory.js';
import { call, startNode, startSilentPeer, startStorescp, waitUntil, type Node, type Storescp } from './helpers/networking.js';
import { run } from './helpers/interop.js';

const HAS_DCMTK = existsSync('/usr/bin/storescp');

const readStudyUid = (file: Buffer) => readPart10(file).dataset.string(Tags.StudyInstanceUID)!;
const readSeriesUid = (file: Buffer) => readPart10(file).dataset.string(Tags.SeriesInstanceUID)!;

/** How long a promise takes to settle, in ms, and its rejection. */
async function settle(promise: Promise<unknown>): Promise<{ ms: number; error?: Error }> {
  const start = process.hrtime.bigint();
  let error: Error | undefined;
  await promise.catch((e: Error) => (error = e));
  return { ms: Number((process.hrtime.bigint() - start) / 1000000n), error };
}

describe('the requestor answers as soon as its timer fires (net/association.ts)', function () {
  this.timeout(30000);
  const verification = [{ abstractSyntax: SopClasses.Verification, transferSyntaxes: [ImplicitVRLittleEndian] }];
  // ARTIM is long next to the response timeout: the old behaviour (answering once ARTIM had run, twice) fails the bound.
  const timeouts = { responseMs: 300, artimMs: 3000 };

  it('no A-ASSOCIATE-AC: ERR_ASSOC_TIMEOUT before ARTIM could run; the A-ABORT is sent and the socket closed behind', async () => {
    const silent = await startSilentPeer();
    try {
      let association: Association | undefined;
      const opening = openAssociation({ host: '127.0.0.1', port: silent.port, callingAet: 'ME', calledAet: 'SILENT', presentationContexts: verification, timeouts });
      const { ms, error } = await settle(opening.then((a) => (association = a)));
      expect(association).to.equal(undefined);
      expect(error).to.be.instanceOf(AssociationError);
      expect((error as AssociationError).code).to.equal('ERR_ASSOC_TIMEOUT');
      expect(ms, `answered after ${ms} ms`).to.be.below(timeouts.artimMs);
      // Behind the answer: the A-ABORT (source 0, reason 0) went out, and the socket is cut once ARTIM expires.
      await waitUntil(() => silent.open() === 0, 'the connection to close', timeouts.artimMs + 5000);
      expect([...silent.received().subarray(-10)]).to.deep.equal([0x07, 0, 0, 0, 0, 4, 0, 0, 0, 0]);
    } finally {
      await silent.close();
    }
  });

  it('no A-RELEASE-RP: the release rejects with ERR_ASSOC_TIMEOUT before ARTIM could run, and the association ends behind', async () => {
    // An acceptor that accepts everything and never answers the A-RELEASE-RQ.
    const server = new UlServer({
      maxPduLength: 16384,
      artimTimeoutMs: 30000,
      idleTimeoutMs: 0,
      onAssociation: (a) =>
        a.once('associate-request', (rq) =>
          a.accept({
            type: 'A-ASSOCIATE-AC',
            protocolVersion: 1,
            calledAeTitle: rq.calledAeTitle,
            callingAeTitle: rq.callingAeTitle,
            applicationContextName: rq.applicationContextName,
            presentationContexts: rq.presentationContexts.map((pc) => ({ id: pc.id, result: 0, transferSyntax: pc.transferSyntaxes[0] })),
            userInformation: { ...emptyUserInformation(), maxPduLength: 16384 },
          }),
        ),
    });
    const port = await server.listen(0, '127.0.0.1');
    try {
      const association = await openAssociation({ host: '127.0.0.1', port, callingAet: 'ME', calledAet: 'MUTE', presentationContexts: verification, timeouts });
      const { ms, error } = await settle(association.release());
      expect((error as AssociationError).code).to.equal('ERR_ASSOC_TIMEOUT');
      expect(error!.message).to.contain('no A-RELEASE-RP');
      expect(ms, `answered after ${ms} ms`).to.be.below(timeouts.artimMs);
      const end = await association.whenClosed(); // the A-ABORT went out; the peer closes, or ARTIM cuts the socket
      expect(end.aborted).to.equal(true);
    } finally {
      server.abortAll();
      await server.close();
    }
  });
});

const count = (log: string, what: string): number => log.split('\n').filter((line) => line.includes(what)).length;

describe('REST: SCU associations (DicomAssociationCloseDelay, silent nodes)', function () {
  this.timeout(60000);
  let dir: string;

  before(function () {
    if (!HAS_DCMTK) this.skip(); // dcmtk is installed by .ci/run
    dir = mkdtempSync(join(tmpdir(), 'hc2-pool-'));
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A pacsnode with `instances` instances stored, and the storescp it sends to. */
  async function setup(name: string, closeDelay: number, storescpArgs: string[] = []): Promise<{ node: Node; storescp: Storescp; ids: string[] }> {
    const storescp = await startStorescp(join(dir, name), 'STORESCP', { verbose: true, args: storescpArgs });
    const node = await startNode('PACSA', {
      DicomModalities: { storescp: ['STORESCP', '127.0.0.1', storescp.port] },
      DicomAssociationCloseDelay: closeDelay,
      DicomScuTimeout: 10,
    });
    const ids: string[] = [];
    for (let n = 1; n <= 2; n++) ids.push((await call(node.url, 'POST', '/instances', makeInstance({ patientId: name, instanceNumber: n }))).json.ID as unknown as string);
    return { node, storescp, ids };
  }

  /** `run` with a fresh setup, closed afterwards whatever happens. */
  async function withSetup(name: string, closeDelay: number, run: (s: { node: Node; storescp: Storescp; ids: string[] }) => Promise<void>): Promise<void> {
    const s = await setup(name, closeDelay);
    try {
      await run(s);
    } finally {
      await s.node.close();
      await s.storescp.stop();
    }
  }

  async function store(node: Node, ids: string[]): Promise<void> {
    const r = await call(node.url, 'POST', '/modalities/storescp/store', ids);
    expect(r.status, r.text).to.equal(200);
    expect(r.json).to.include({ FailedInstancesCount: 0, InstancesCount: ids.length });
  }

  describe('DicomAssociationCloseDelay', () => {
    it('two store jobs within the delay share one association; once idle for the delay it is released, the next job opens a new one', async () => {
      await withSetup('share', 3, async ({ node, storescp, ids }) => {
        await store(node, [ids[0]!]);
        await store(node, [ids[1]!]);
        await store(node, ids);
        expect(count(storescp.log(), 'Association Acknowledged'), storescp.log()).to.equal(1);
        expect(count(storescp.log(), 'Association Release')).to.equal(0);
        // The delay passes without a job: the association is released (A-RELEASE, not an abort).
        await waitUntil(() => count(storescp.log(), 'Association Release') === 1, 'the idle association to be released');
        expect(storescp.log()).not.to.contain('Abort');
        await store(node, [ids[0]!]);
        expect(count(storescp.log(), 'Association Acknowledged')).to.equal(2);
      });
    });

    it('a job needing contexts the kept association did not propose opens a new one; an echo releases what is kept first', async () => {
      await withSetup('contexts', 30, async ({ node, storescp, ids }) => {
        await store(node, [ids[0]!]);
        const mr = (await call(node.url, 'POST', '/instances', makeInstance({ patientId: 'contexts', sopClassUid: SopClasses.MRImageStorage }))).json.ID as unknown as string;
        await store(node, [mr]);
        expect(count(storescp.log(), 'Association Acknowledged')).to.equal(2);
        expect(count(storescp.log(), 'Association Release')).to.equal(1);
        // storescp serves one association at a time: the echo gets through because the kept one is released.
        const echo = await call(node.url, 'POST', '/modalities/storescp/echo', { Timeout: 5 });
        expect(echo.status, echo.text).to.equal(200);
        expect(count(storescp.log(), 'Association Acknowledged')).to.equal(3);
        expect(count(storescp.log(), 'Received Echo Request')).to.equal(1);
      });
    });

    it('a C-MOVE served by pacsnode towards the node releases the kept association first (storescp serves one at a time)', async () => {
      const storescp = await startStorescp(join(dir, 'cmove'), 'STORESCP', { verbose: true });
      const node = await startNode('PACSA', {
        DicomModalities: { storescp: ['STORESCP', '127.0.0.1', storescp.port] },
        DicomAssociationCloseDelay: 60,
        DicomAlwaysAllowMove: true,
      });
      try {
        const first = (await call(node.url, 'POST', '/instances', makeInstance({ patientId: 'CMOVE', instanceNumber: 1 }))).json.ID as unknown as string;
        const second = makeInstance({ patientId: 'CMOVE', instanceNumber: 2, sopInstanceUid: '1.2.826.0.1.3680043.99.6.2' });
        await call(node.url, 'POST', '/instances', second);
        await store(node, [first]);
        expect(count(storescp.log(), 'Association Release')).to.equal(0);
        // movescu asks pacsnode to send the second instance to STORESCP: the kept association goes first, then the
        // sub-operations' association is served at once (not after the 60 s delay, far past this test's timeout).
        const moved = await run('movescu', ['-S', '-aet', 'MOVER', '-aec', 'PACSA', '-aem', 'STORESCP', '-k', 'QueryRetrieveLevel=IMAGE',
          '-k', 'SOPInstanceUID=1.2.826.0.1.3680043.99.6.2', '-k', `StudyInstanceUID=${readStudyUid(second)}`, '-k', `SeriesInstanceUID=${readSeriesUid(second)}`,
          '127.0.0.1', String(node.dicomPort)]);
        expect(moved.code, moved.out).to.equal(0);
        expect(count(storescp.log(), 'Association Release')).to.be.at.least(1);
        expect(count(storescp.log(), 'Association Acknowledged')).to.equal(2);
      } finally {
        await node.close();
        await storescp.stop();
      }
    });

    it('0 releases each association as soon as its job is done', async () => {
      await withSetup('zero', 0, async ({ node, storescp, ids }) => {
        await store(node, [ids[0]!]);
        await waitUntil(() => count(storescp.log(), 'Association Release') === 1, 'the release');
        await store(node, [ids[1]!]);
        await waitUntil(() => count(storescp.log(), 'Association Release') === 2, 'the second release');
        expect(count(storescp.log(), 'Association Acknowledged')).to.equal(2);
      });
    });

    it("the server's shutdown releases the associations it keeps open", async () => {
      const { node, storescp, ids } = await setup('shutdown', 60);
      try {
        await store(node, ids);
        expect(count(storescp.log(), 'Association Acknowledged')).to.equal(1);
        expect(count(storescp.log(), 'Association Release')).to.equal(0);
      } finally {
        await node.close();
      }
      try {
        await waitUntil(() => count(storescp.log(), 'Association Release') === 1, 'the release at shutdown');
        expect(storescp.log()).not.to.contain('Abort');
      } finally {
        await storescp.stop();
      }
    });

    it('an association the peer closed while kept is forgotten: the next job opens a new one and succeeds', async () => {
      const { node, storescp, ids } = await setup('restarted', 60);
      let again: Storescp | undefined;
      try {
        await store(node, [ids[0]!]);
        const pool = node.ctx.modalityStoreDeps.sessions!;
        expect(pool.size).to.equal(1);
        // The node restarts (its process ends: the connection closes under the kept association).
        await storescp.stop();
        await waitUntil(() => pool.size === 0, 'the closed association to be forgotten');
        again = await startStorescp(storescp.dir, 'STORESCP', { port: storescp.port, verbose: true });
        await store(node, [ids[1]!]);
        expect(count(again.log(), 'Association Acknowledged'), again.log()).to.equal(1);
      } finally {
        await node.close();
        await again?.stop();
      }
    });

    it('an association the peer aborted while kept (its DicomScpTimeout) is forgotten: the next job succeeds', async () => {
      const b = await startNode('PACSB', { DicomScpTimeout: 1 });
      const { node, storescp, ids } = await setup('aborted', 60);
      try {
        await call(node.url, 'PUT', '/modalities/b', ['PACSB', '127.0.0.1', b.dicomPort]);
        const first = await call(node.url, 'POST', '/modalities/b/store', [ids[0]]);
        expect(first.status, first.text).to.equal(200);
        const pool = node.ctx.modalityStoreDeps.sessions!;
        expect(pool.size).to.equal(1);
        await waitUntil(() => pool.size === 0, 'PACSB to abort the idle association');
        const second = await call(node.url, 'POST', '/modalities/b/store', [ids[1]]);
        expect(second.status, second.text).to.equal(200);
        expect(second.json).to.include({ FailedInstancesCount: 0 });
        expect((await call(b.url, 'GET', '/instances')).json).to.have.length(2);
      } finally {
        await node.close();
        await storescp.stop();
        await b.close();
      }
    });
  });

  describe('a node that accepts the connection and never answers', () => {
    const TIMEOUT_S = 4;
    // The old behaviour answered after the timeout, then ARTIM twice (about 3 x the timeout = 12 s): this bound
    // fails it, with 7 s of margin for a loaded machine on the other side.
    const BOUND_MS = 2 * TIMEOUT_S * 1000 + 3000;
    let silent: { port: number; close(): Promise<void> };
    let node: Node;

    before(async () => {
      silent = await startSilentPeer();
      node = await startNode('PACSA', {
        DicomModalities: { silent: ['SILENT', '127.0.0.1', silent.port] },
        DicomScuTimeout: TIMEOUT_S,
        DicomAlwaysAllowMove: true,
      });
      await call(node.url, 'POST', '/instances', makeInstance({ patientId: 'SILENT' }));
    });
    after(async () => {
      await node?.close();
      await silent?.close();
    });

    async function timed(path: string, body: unknown): Promise<{ ms: number; status: number; details: string }> {
      const start = process.hrtime.bigint();
      const r = await call(node.url, 'POST', path, body);
      const ms = Number((process.hrtime.bigint() - start) / 1000000n);
      return { ms, status: r.status, details: String(r.json.Details ?? r.text) };
    }

    it(`echo, store, move and get with Timeout ${TIMEOUT_S} fail with a clear error in under 2 x the timeout + 3 s`, async () => {
      const instances = (await call(node.url, 'GET', '/instances')).json as unknown as string[];
      const calls: [string, unknown][] = [
        ['/modalities/silent/echo', { Timeout: TIMEOUT_S }],
        ['/modalities/silent/store', { Resources: instances, Timeout: TIMEOUT_S }],
        ['/modalities/silent/move', { Level: 'Study', Resources: [{ StudyInstanceUID: '1.2.3' }], Timeout: TIMEOUT_S }],
        ['/modalities/silent/get', { Level: 'Study', Resources: [{ StudyInstanceUID: '1.2.3' }], Timeout: TIMEOUT_S }],
      ];
      for (const [path, body] of calls) {
        const r = await timed(path, body);
        expect(r.status, `${path}: ${r.details}`).to.equal(500);
        expect(r.details, path).to.match(/SILENT/);
        expect(r.details, path).to.match(new RegExp(`within ${TIMEOUT_S * 1000} ms`));
        expect(r.ms, `${path} answered after ${r.ms} ms`).to.be.below(BOUND_MS);
      }
    });

    it('a C-MOVE served by pacsnode towards the silent node fails its sub-operations within DicomScuTimeout', async () => {
      const file = makeInstance({ patientId: 'SILENTMOVE', sopInstanceUid: '1.2.826.0.1.3680043.99.6.9' });
      await call(node.url, 'POST', '/instances', file);
      const start = process.hrtime.bigint();
      const moved = await run('movescu', ['-S', '-aet', 'MOVER', '-aec', 'PACSA', '-aem', 'SILENT', '-k', 'QueryRetrieveLevel=STUDY',
        '-k', `StudyInstanceUID=${readStudyUid(file)}`, '127.0.0.1', String(node.dicomPort)]);
      const ms = Number((process.hrtime.bigint() - start) / 1000000n);
      // The sub-operation could not be made: the C-MOVE ends with a failure status, not after the 30 s default.
      expect(moved.out).to.match(/Failed|Refused|Warning/i);
      expect(ms, `movescu ended after ${ms} ms`).to.be.below(BOUND_MS);
    });

    it('an asynchronous store job fails within the bound too, with the reason', async () => {
      const instances = (await call(node.url, 'GET', '/instances')).json as unknown as string[];
      const start = process.hrtime.bigint();
      const id = (await call(node.url, 'POST', '/modalities/silent/store', { Resources: instances, Timeout: TIMEOUT_S, Synchronous: false })).json.ID as unknown as string;
      await waitUntil(async () => (await call(node.url, 'GET', `/jobs/${id}`)).json.State === 'Failure', 'the job to fail');
      const ms = Number((process.hrtime.bigint() - start) / 1000000n);
      const job = (await call(node.url, 'GET', `/jobs/${id}`)).json as unknown as { ErrorCode: number; ErrorDetails: string };
      expect(job.ErrorCode).to.equal(9); // NetworkProtocol
      expect(job.ErrorDetails).to.match(new RegExp(`SILENT.*within ${TIMEOUT_S * 1000} ms`));
      expect(ms, `failed after ${ms} ms`).to.be.below(BOUND_MS);
    });
  });
});
