/**
 * A bounded association-level fuzz test (STYLE.md habit 13, at scale): one live DicomScpServer, in this process,
 * receives 20,000 cases of mutated traffic built from valid PDU sequences (`helpers/fuzz-cases.ts` describes them),
 * played by a client in a worker thread, 256 connections at once (512 descriptors: within the usual limit of 1024).
 *
 * Invariants:
 * - the process survives: no uncaught exception, no unhandled rejection (process-level listeners, in place of
 *   mocha's for the run);
 * - the server closes every connection within CLOSE_BOUND_MS of the last byte sent when it has nothing more to
 *   wait for (its ARTIM and activity timers are set small), answers or ends every DIMSE-level case within that
 *   bound, and holds no association at the end;
 * - what the server sends parses as PDUs an acceptor may send, in an order it may send them, no P-DATA-TF longer
 *   than the Maximum Length advertised (`helpers/fuzz-traffic.ts`, AcceptorOutput);
 * - unmutated cases succeed (AC, Success statuses, RP, the instance stored byte for byte);
 * - nothing half-stored: the index counts as many instances as the storage area holds files, no temp file is
 *   left; a case whose dataset PDUs went out intact stored that exact dataset or nothing; a case whose stream was
 *   cut inside its dataset stored nothing;
 * - afterwards our echo SCU, DCMTK's echoscu (when installed) and our store SCU still succeed.
 *
 * Seeds: every case's bytes, chunking and ending come from its own PRNG, seeded from (run seed, case index). The run
 * seed is fixed by default (CI explores the same 20,000 cases each time). Environment:
 *   PACSNODE_FUZZ_SEED=<n>|random   another run seed (the one used is in the suite's title and every message)
 *   PACSNODE_FUZZ_CASES=<n>          number of cases (default 20000)
 *   PACSNODE_FUZZ_CASE=<i>           replay case i alone (a DIMSE-level case: its batch up to it), in this thread
 *   PACSNODE_FUZZ_CONCURRENCY=<n>    connections at once (default 256)
 *   PACSNODE_FUZZ_VERBOSE=1          print the run's statistics (and, replaying, each case)
 * A failing case's bytes are written, in hex, to a JSON file in the temp folder (named in the message). The
 * server's log names each case: calling AE title FUZZ<i> (association level) or FZB<first case of the batch>.
 * To replay case 1234 of the default seed, with the server's log:
 *   PACSNODE_FUZZ_CASE=1234 PACSNODE_FUZZ_VERBOSE=1 PACSNODE_LOG_LEVEL=debug \
 *     npx mocha --no-config --node-option import=tsx --require test/helpers/setup.ts --exit test/fuzz-association.test.ts
 */
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { createDicomHandlers } from '../src/app/dicom-handlers.js';
import { readPart10 } from '../src/dicom/reader.js';
import { DicomScpServer } from '../src/dimse/scp/server.js';
import { echo } from '../src/dimse/scu/echo.js';
import { storeInstances } from '../src/dimse/scu/store.js';
import { Status } from '../src/dimse/status.js';
import { tempContext, type TestContext } from './helpers/context.js';
import { makeInstance } from './helpers/factory.js';
import {
  ARTIM_MS,
  batchStart,
  CLOSE_BOUND_MS,
  Conn,
  CT,
  CTX_CT_EXPLICIT,
  CTX_ECHO,
  dimseRq,
  IDLE_MS,
  isAssociationCase,
  runFuzz,
  SERVER_MAX_PDU,
  sha1,
  sopUidOf,
  type Outcome,
} from './helpers/fuzz-cases.js';
import { startFuzzClient } from './helpers/fuzz-client.js';
import { echoCommand, encodeCommandSet, storeCommand } from './helpers/fuzz-traffic.js';
import { datasetBytes, findInstance, run, storageCensus, waitFor } from './helpers/interop.js';
import {
  applicationContext,
  associate,
  implementationClassUid,
  maximumLength,
  pDataTf,
  pdv,
  presentationContextRq,
  releaseRq,
  roleSelection,
  userInformation,
} from './helpers/pdu-bytes.js';

function parseSeed(text: string | undefined): number {
  if (text === undefined || text === '') return 0x5eed2026;
  if (text === 'random') return (Math.random() * 0x100000000) >>> 0;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`PACSNODE_FUZZ_SEED must be an integer 0..4294967295 or "random", got ${text}`);
  return n;
}

const SEED = parseSeed(process.env.PACSNODE_FUZZ_SEED);
const CASES = Number(process.env.PACSNODE_FUZZ_CASES ?? 20000);
const ONLY = process.env.PACSNODE_FUZZ_CASE !== undefined ? Number(process.env.PACSNODE_FUZZ_CASE) : undefined;
const CONCURRENCY = ONLY !== undefined ? 1 : Number(process.env.PACSNODE_FUZZ_CONCURRENCY ?? 256);
const VERBOSE = process.env.PACSNODE_FUZZ_VERBOSE === '1';

/** This file alone (`npx mocha <file>` would add the .mocharc.json spec, i.e. the whole suite). */
const THIS_FILE_ONLY = 'npx mocha --no-config --node-option import=tsx --require test/helpers/setup.ts --exit test/fuzz-association.test.ts';
const reproduce = (index: number) => `PACSNODE_FUZZ_SEED=${SEED} PACSNODE_FUZZ_CASE=${index} PACSNODE_FUZZ_VERBOSE=1 ${THIS_FILE_ONLY}`;

/** Swaps mocha's process-level listeners for ours (mocha's would fail whichever test runs, and let the run go on unseen). */
function captureProcessErrors(onError: (kind: string, error: unknown) => void): () => void {
  const saved = { rejection: process.listeners('unhandledRejection'), exception: process.listeners('uncaughtException') };
  const onRejection = (error: unknown) => onError('unhandledRejection', error);
  const onException = (error: unknown) => onError('uncaughtException', error);
  process.removeAllListeners('unhandledRejection');
  process.removeAllListeners('uncaughtException');
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
    for (const l of saved.rejection) process.on('unhandledRejection', l);
    for (const l of saved.exception) process.on('uncaughtException', l);
  };
}

describe(`Association fuzzing (${ONLY !== undefined ? `case ${ONLY}` : `${CASES} cases`}, seed ${SEED})`, function () {
  this.timeout(300000);
  let t: TestContext;
  let server: DicomScpServer;
  let port: number;
  const processErrors: { kind: string; error: unknown; at: number }[] = [];
  let release: (() => void) | undefined;
  const outcomes = new Map<number, Outcome>();
  const stats = { cases: 0, byPdu: new Map<string, number>(), controls: 0, maxCloseMs: 0, totalCloseMs: 0, closes: 0, elapsedMs: 0 };

  before(async () => {
    release = captureProcessErrors((kind, error) => {
      processErrors.push({ kind, error, at: Date.now() });
    });
    t = await tempContext();
    server = new DicomScpServer(createDicomHandlers(t.ctx), {
      aet: 'PACSNODE',
      maxPduLength: SERVER_MAX_PDU,
      idleTimeoutMs: IDLE_MS,
      artimTimeoutMs: ARTIM_MS,
    });
    port = await server.listen(0, '127.0.0.1');
  });
  after(async () => {
    release?.();
    await server?.close(1000);
    await t?.close();
  });

  it('survives: no process-level error, every connection closed in bounded time, only what an acceptor may send', async () => {
    let indexes: number[];
    if (ONLY === undefined) indexes = Array.from({ length: CASES }, (_, i) => i);
    else if (isAssociationCase(ONLY)) indexes = [ONLY];
    else indexes = Array.from({ length: ONLY - batchStart(ONLY) + 1 }, (_, i) => batchStart(ONLY) + i);
    const started = Date.now();
    const onOutcome = (o: Outcome) => {
      outcomes.set(o.index, o);
      if (ONLY !== undefined && VERBOSE) console.log(`${o.description}\n    server sent: ${o.types.join(', ')}${o.problems.length ? `\n    ${o.problems.join('\n    ')}` : ''}`);
    };
    // The client in a worker thread (its own core); a replay in this thread, easier to follow in a debugger.
    if (ONLY === undefined) await startFuzzClient({ port, seed: SEED, indexes, concurrency: CONCURRENCY }, onOutcome);
    else await runFuzz({ port, seed: SEED, indexes, concurrency: 1 }, onOutcome);
    stats.elapsedMs = Date.now() - started;
    const failures: string[] = [];
    for (const o of [...outcomes.values()].sort((a, b) => a.index - b.index)) {
      stats.cases++;
      if (o.control) stats.controls++;
      for (const type of new Set(o.types)) stats.byPdu.set(type, (stats.byPdu.get(type) ?? 0) + 1);
      if (o.closedAfterMs !== undefined) {
        stats.closes++;
        stats.totalCloseMs += o.closedAfterMs;
        stats.maxCloseMs = Math.max(stats.maxCloseMs, o.closedAfterMs);
      }
      if (o.problems.length > 0 && failures.length < 20) {
        failures.push(`${o.description}\n    ${o.problems.join('\n    ')}\n    replay: ${reproduce(o.index)}${o.dump ? `\n    bytes: ${o.dump}` : ''}`);
      }
    }
    expect(stats.cases, 'cases played').to.equal(indexes.length);
    if (VERBOSE) {
      const answered = [...stats.byPdu].map(([k, v]) => `${k} ${v}`).join(', ');
      console.log(
        `fuzz: ${stats.cases} cases in ${stats.elapsedMs} ms (seed ${SEED}, ${CONCURRENCY} connections at once); ${stats.controls} unmutated; ` +
          `cases answered with: ${answered}; close after the last byte: max ${stats.maxCloseMs} ms, mean ${Math.round(stats.totalCloseMs / Math.max(1, stats.closes))} ms; `,
      );
      // Where the connections' time goes (seconds of connection time, by kind of case).
      const time = new Map<string, number>();
      for (const o of outcomes.values()) {
        const kind = o.family === 'dimse' ? 'DIMSE level' : `association level, ending ${/ending (\w+)/.exec(o.description)?.[1]}`;
        time.set(kind, (time.get(kind) ?? 0) + (o.endedAt - o.startedAt) / 1000);
      }
      console.log(`fuzz: connection time: ${[...time].map(([k, v]) => `${k} ${Math.round(v)} s`).join(', ')}`);
    }
    // Process-level errors grouped by kind and message (numbers elided), with the cases under way at the first of each.
    const underWay = (at: number) => [...outcomes.values()].filter((o) => o.startedAt <= at + 5 && o.endedAt >= at - 5).map((o) => o.index);
    const groups = new Map<string, { count: number; first: (typeof processErrors)[number] }>();
    for (const p of processErrors) {
      const key = `${p.kind}: ${(p.error as Error)?.name}: ${String((p.error as Error)?.message ?? p.error).replace(/\d+/g, 'N')}`;
      const g = groups.get(key);
      if (g) g.count++;
      else groups.set(key, { count: 1, first: p });
    }
    const crashes = [...groups].map(
      ([key, g]) =>
        `${g.count} x ${key}\n    first: ${(g.first.error as Error)?.stack ?? String(g.first.error)}\n    cases under way then: ${underWay(g.first.at).join(', ')} (replay each with ${reproduce(underWay(g.first.at)[0] ?? 0)})`,
    );
    expect([...crashes, ...failures], 'process-level errors, then failing cases (first 20)').to.deep.equal([]);
    if (ONLY === undefined && CASES >= 1000) {
      // The fuzzer reaches every layer: many cases accepted, answered with DIMSE responses, aborted.
      expect(stats.byPdu.get('A-ASSOCIATE-AC') ?? 0, 'cases accepted').to.be.greaterThan(stats.cases * 0.5);
      expect(stats.byPdu.get('P-DATA-TF') ?? 0, 'cases answered with P-DATA').to.be.greaterThan(stats.cases * 0.25);
      expect(stats.byPdu.get('A-ABORT') ?? 0, 'cases aborted').to.be.greaterThan(stats.cases * 0.15);
      expect(stats.controls, 'unmutated cases').to.be.greaterThan(stats.cases * 0.05);
    }
  });

  it('holds no association afterwards', async () => {
    const internals = server as unknown as { ul: { associations: Set<unknown> }; sessions: Set<unknown> };
    await waitFor(() => internals.ul.associations.size === 0 && internals.sessions.size === 0, 'the server to hold no association', CLOSE_BOUND_MS + 2000).catch(
      () => undefined,
    );
    expect(internals.ul.associations.size, 'associations left').to.equal(0);
    expect(internals.sessions.size, 'sessions left').to.equal(0);
  });

  it('stored nothing by halves: index and storage area agree, intact datasets stored whole or not at all, cut ones not at all', async () => {
    const root = t.ctx.config.StorageDirectory;
    // Stores under way when their association ended finish (or fail) on their own: wait for the two to agree.
    const agree = () => {
      const census = storageCensus(root);
      return census.files === t.ctx.index.statistics().countInstances && census.temporary.length === 0;
    };
    await waitFor(agree, 'the index and the storage area to agree', 10000).catch(() => undefined);
    const census = storageCensus(root);
    expect(census.temporary, 'temporary files left').to.deep.equal([]);
    expect(census.files, 'files in the storage area vs instances in the index').to.equal(t.ctx.index.statistics().countInstances);
    const problems: string[] = [];
    let stored = 0;
    let intact = 0;
    let cut = 0;
    for (const o of outcomes.values()) {
      if (!o.store) continue;
      const row = findInstance(t.ctx, o.store.sopInstanceUid);
      if (row) stored++;
      if (o.dataset === 'intact') intact++;
      if (o.dataset === 'cut') cut++;
      if (o.dataset === 'cut' && row) problems.push(`${o.description}: its dataset was cut, yet ${o.store.sopInstanceUid} was stored\n    replay: ${reproduce(o.index)}`);
      if (o.dataset === 'intact' && row) {
        const file = await t.ctx.store.readDicom(row.publicId);
        const got = datasetBytes(file);
        if (readPart10(file).truncated || sha1(got) !== o.store.sha1) {
          problems.push(`${o.description}: stored ${o.store.sopInstanceUid} differs from the intact dataset sent (${got.length} vs ${o.store.length} bytes)\n    replay: ${reproduce(o.index)}`);
        }
      }
      if (o.mustStore && !row) problems.push(`${o.description}: unmutated, not stored\n    replay: ${reproduce(o.index)}`);
      if (problems.length >= 20) break;
    }
    if (VERBOSE) console.log(`fuzz: ${stored} instances stored; ${intact} datasets sent intact, ${cut} cut`);
    expect(problems, 'half-stored or lost instances (first 20)').to.deep.equal([]);
    if (ONLY === undefined && CASES >= 1000) {
      expect(stored, 'instances stored by the cases').to.be.greaterThan(outcomes.size * 0.05);
      expect(cut, 'datasets cut').to.be.greaterThan(0);
    }
  });

  it('still serves afterwards: our echo SCU, echoscu, our store SCU', async () => {
    expect(await echo({ host: '127.0.0.1', port, callingAet: 'AFTER', calledAet: 'PACSNODE' })).to.equal(Status.Success);
    if (existsSync('/usr/bin/echoscu')) {
      const r = await run('echoscu', ['-aec', 'PACSNODE', '127.0.0.1', String(port)]);
      expect(r.code, r.out).to.equal(0);
    }
    const file = makeInstance({ patientId: 'AFTERFUZZ' });
    const summary = await storeInstances({ host: '127.0.0.1', port, callingAet: 'AFTER', calledAet: 'PACSNODE' }, [{ bytes: file, name: 'after' }]);
    expect(summary.results[0]!.outcome).to.equal('sent');
  });
});

// ---------------------------------------------------------------------------------------------------------------

/**
 * The defects the fuzzing found (D1-D4, fixed), each reproduced deterministically: regression tests.
 */
describe('Association fuzzing: regressions of the defects it found', function () {
  this.timeout(20000);
  let t: TestContext;
  let server: DicomScpServer;
  let port: number;

  beforeEach(async () => {
    t = await tempContext();
    server = new DicomScpServer(createDicomHandlers(t.ctx), { aet: 'PACSNODE', maxPduLength: SERVER_MAX_PDU, idleTimeoutMs: 2000, artimTimeoutMs: 500 });
    port = await server.listen(0, '127.0.0.1');
  });
  afterEach(async () => {
    await server?.close(200);
    await t?.close();
  });

  /** Opens a connection and has the association accepted (contexts 1 Verification, 3 CT explicit, 5 CT implicit). */
  async function associated(): Promise<Conn> {
    const conn = new Conn(port, SERVER_MAX_PDU);
    await conn.opened();
    conn.write(dimseRq(0));
    await conn.until(() => conn.output.types.length > 0, 5000);
    expect(conn.output.types[0]).to.equal('A-ASSOCIATE-AC');
    return conn;
  }

  it('D1: a PDV out of sequence in the same chunk as a C-STORE-RQ\'s first dataset fragment gets an A-ABORT, not an uncaught error', async function () {
    const errors: { kind: string; error: unknown }[] = [];
    const restore = captureProcessErrors((kind, error) => errors.push({ kind, error }));
    try {
      const conn = await associated();
      const sop = sopUidOf(99999990);
      const store = encodeCommandSet(storeCommand(1, CT, sop));
      // One write: the C-STORE-RQ command, a dataset fragment that is not the last, then a C-ECHO-RQ command.
      conn.write(Buffer.concat([pDataTf(pdv(CTX_CT_EXPLICIT, 0x03, store), pdv(CTX_CT_EXPLICIT, 0x00, Buffer.alloc(100))), pDataTf(pdv(CTX_ECHO, 0x03, encodeCommandSet(echoCommand(2))))]));
      const closedAfter = await conn.closedWithin(5000);
      await new Promise((r) => setTimeout(r, 100));
      expect(errors.map((e) => String(e.error))).to.deep.equal([]);
      expect(conn.output.types).to.deep.equal(['A-ASSOCIATE-AC', 'A-ABORT']);
      expect(closedAfter).to.not.equal(undefined);
    } finally {
      restore();
    }
  });

  it('D1 (second trigger): the connection drops while a C-STORE\'s dataset is incomplete and its work waits behind an earlier C-STORE: no uncaught error', async function () {
    // The earlier C-STORE's work takes a while (a slow disk: its handler is delayed), so that the next one waits.
    const handlers = createDicomHandlers(t.ctx);
    const store = handlers.store.store;
    handlers.store.store = async (request, assoc) => {
      const status = await store(request, assoc);
      await new Promise((r) => setTimeout(r, 500));
      return status;
    };
    const slow = new DicomScpServer(handlers, { aet: 'PACSNODE', maxPduLength: SERVER_MAX_PDU, idleTimeoutMs: 2000, artimTimeoutMs: 500 });
    const slowPort = await slow.listen(0, '127.0.0.1');
    const errors: { kind: string; error: unknown }[] = [];
    const restore = captureProcessErrors((kind, error) => errors.push({ kind, error }));
    try {
      const conn = new Conn(slowPort, SERVER_MAX_PDU);
      await conn.opened();
      conn.write(dimseRq(0));
      await conn.until(() => conn.output.types.length > 0, 5000);
      const first = sopUidOf(99999991);
      const dataset = datasetBytes(makeInstance({ sopInstanceUid: first }));
      // One write: a whole C-STORE, then the command and a first fragment of another; a TCP reset 100 ms later.
      conn.write(
        Buffer.concat([
          pDataTf(pdv(CTX_CT_EXPLICIT, 0x03, encodeCommandSet(storeCommand(1, CT, first))), pdv(CTX_CT_EXPLICIT, 0x02, dataset)),
          pDataTf(pdv(CTX_CT_EXPLICIT, 0x03, encodeCommandSet(storeCommand(2, CT, sopUidOf(99999992)))), pdv(CTX_CT_EXPLICIT, 0x00, Buffer.alloc(100))),
        ]),
      );
      await new Promise((r) => setTimeout(r, 100));
      await conn.reset();
      await new Promise((r) => setTimeout(r, 800));
      expect(errors.map((e) => String(e.error))).to.deep.equal([]);
    } finally {
      restore();
      await slow.close(200);
    }
  });

  it('D2: the responses to requests received before an A-RELEASE-RQ go out before the A-RELEASE-RP', async function () {
    const conn = await associated();
    // One write: a C-ECHO-RQ and the A-RELEASE-RQ (PS3.8 Sta8 still allows the acceptor's P-DATA: AR-7).
    conn.write(Buffer.concat([pDataTf(pdv(CTX_ECHO, 0x03, encodeCommandSet(echoCommand(1)))), releaseRq()]));
    await conn.until(() => conn.output.ended, 5000);
    conn.end();
    expect(conn.output.types).to.deep.equal(['A-ASSOCIATE-AC', 'P-DATA-TF', 'A-RELEASE-RP']);
    expect(conn.output.responses).to.deep.equal([{ status: Status.Success, messageId: 1 }]);
  });

  it('D3: an A-ASSOCIATE-RQ whose Role Selection names a SOP Class UID with a non-ASCII byte is answered, without an uncaught error', async function () {
    const errors: { kind: string; error: unknown }[] = [];
    const restore = captureProcessErrors((kind, error) => errors.push({ kind, error }));
    try {
      const conn = new Conn(port, SERVER_MAX_PDU);
      await conn.opened();
      // 0xB0 where a UID has digits: the RQ decodes (as Latin-1) and the AC echoing it cannot be encoded.
      conn.write(
        associate(0x01, 'PACSNODE', 'D3', [
          applicationContext('1.2.840.10008.3.1.1.1'),
          presentationContextRq(CTX_ECHO, '1.2.840.10008.1.1', ['1.2.840.10008.1.2']),
          userInformation(maximumLength(SERVER_MAX_PDU), implementationClassUid('1.2.3'), roleSelection(`${CT}\u00b0`, 1, 1)),
        ]),
      );
      const closedAfter = await conn.closedWithin(5000);
      await new Promise((r) => setTimeout(r, 100));
      expect(errors.map((e) => String(e.error))).to.deep.equal([]);
      expect(conn.output.problems).to.deep.equal([]);
      expect(closedAfter).to.not.equal(undefined);
    } finally {
      restore();
    }
  });

  it('D4: the activity timeout does not run while the server works on a request: a C-STORE handled for longer than it is answered', async function () {
    const handlers = createDicomHandlers(t.ctx);
    const store = handlers.store.store;
    handlers.store.store = async (request, assoc) => {
      const status = await store(request, assoc);
      await new Promise((r) => setTimeout(r, 600)); // a slow disk
      return status;
    };
    const slow = new DicomScpServer(handlers, { aet: 'PACSNODE', maxPduLength: SERVER_MAX_PDU, idleTimeoutMs: 300, artimTimeoutMs: 500 });
    const slowPort = await slow.listen(0, '127.0.0.1');
    try {
      const summary = await storeInstances({ host: '127.0.0.1', port: slowPort, callingAet: 'D4', calledAet: 'PACSNODE' }, [{ bytes: makeInstance(), name: 'd4' }]);
      const [result] = summary.results;
      expect(result!.outcome).to.equal('sent');
    } finally {
      await slow.close(200);
    }
  });

  it('D5: a requestor whose Maximum Length cannot carry a PDV is rejected at once', async () => {
    const conn = new Conn(port, SERVER_MAX_PDU);
    await conn.opened();
    conn.write(
      associate(0x01, 'PACSNODE', 'D5', [
        applicationContext('1.2.840.10008.3.1.1.1'),
        presentationContextRq(CTX_ECHO, '1.2.840.10008.1.1', ['1.2.840.10008.1.2']),
        userInformation(maximumLength(7), implementationClassUid('1.2.3')),
      ]),
    );
    await conn.until(() => conn.output.types.length > 0, 5000);
    expect(conn.output.types).to.deep.equal(['A-ASSOCIATE-RJ']);
    expect(await conn.closedWithin(5000)).to.not.equal(undefined);
  });
});
