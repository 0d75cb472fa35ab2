/**
 * Orthanc's `OrthancPeerStore` job (`POST /peers/{id}/store`): sends stored instances, one per step, to the peer's
 * `POST /instances` over HTTP(S). A file stored uncompressed is streamed from disk; `Compress` gzips it (the peer
 * must be Orthanc 1.6+ or accept `Content-Encoding: gzip`), `Transcode` converts it first (between the
 * uncompressed transfer syntaxes; a file that cannot be converted is sent as it is, as Orthanc does). The job is
 * saved with the peer's definition (credentials included, as Orthanc does) and resumes after a restart.
 */
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { isPacsError, PacsError } from '../core/errors.js';
import { logger } from '../core/log.js';
import { readPart10 } from '../dicom/reader.js';
import { Tags } from '../dicom/tag.js';
import { ExplicitVRLittleEndian, ImplicitVRLittleEndian } from '../dicom/transfer-syntax.js';
import { buildMetaHeader } from '../dicom/writer.js';
import { canTranscode, transcodeDataset } from '../dimse/scu/transcode.js';
import type { Job, JobRuntime, JobStepResult, JobStopReason, JobType } from '../jobs/job.js';
import { StepResult } from '../jobs/job.js';
import { displayUrl, expectSuccess, type PeerClient, type PeerHttp } from '../peers/client.js';
import { parsePeer, serializePeer, type OrthancPeer } from '../peers/registry.js';
import type { DicomStore } from '../store/store.js';
import { SetOfInstancesJob, type SetOfInstancesState } from './set-of-instances-job.js';

const log = logger('jobs');
const gzipAsync = promisify(gzip);

export const PEER_STORE_JOB = 'OrthancPeerStore';

/** What the job needs from the application (kept out of its saved state). */
export interface PeerStoreDeps {
  store: DicomStore;
  http: PeerHttp;
}

/** The saved state of a job (also what it is created from). */
export interface PeerStoreState extends SetOfInstancesState {
  /** The peer's symbolic name. */
  peerName: string;
  /** The peer's definition (long form, with its credentials), as it was when the job was created. */
  peer: unknown;
  compress: boolean;
  /** Transfer syntax UID to convert to before sending, if any. */
  transcode?: string;
  /** Bytes sent (after compression). */
  size: number;
  permissive: boolean;
  /** The resources the job was asked to send (Orthanc's ParentResources). */
  parentResources: string[];
}

/** Transfer syntaxes `Transcode` can convert to (the uncompressed ones). */
export const TRANSCODE_TARGETS: readonly string[] = [ExplicitVRLittleEndian, ImplicitVRLittleEndian];

/** The state of a new job. */
export function newPeerStoreState(
  peer: OrthancPeer,
  instances: string[],
  options: { compress: boolean; transcode?: string; permissive: boolean; description: string; parentResources: string[] },
): PeerStoreState {
  return {
    instances,
    position: 0,
    failed: [],
    peerName: peer.name,
    peer: serializePeer(peer, { forceAdvanced: true, includePasswords: true }),
    compress: options.compress,
    transcode: options.transcode,
    size: 0,
    permissive: options.permissive,
    description: options.description,
    parentResources: [...new Set(options.parentResources)].sort(),
  };
}

async function readAll(source: Buffer | Readable): Promise<Buffer> {
  if (Buffer.isBuffer(source)) return source;
  const chunks: Buffer[] = [];
  for await (const chunk of source as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** The file converted to `to` when this version can (uncompressed syntaxes), else as it is (as Orthanc does). */
function transcoded(file: Buffer, to: string, instanceId: string): Buffer {
  let parsed;
  try {
    parsed = readPart10(file);
  } catch {
    return file;
  }
  if (parsed.transferSyntaxUid === to || !canTranscode(parsed.transferSyntaxUid, to)) {
    if (parsed.transferSyntaxUid !== to) log.info(`instance ${instanceId}: cannot convert ${parsed.transferSyntaxUid} to ${to}; sent as it is`);
    return file;
  }
  try {
    const dataset = transcodeDataset(parsed, to);
    const meta = buildMetaHeader({
      sopClassUid: parsed.meta.string(Tags.MediaStorageSOPClassUID) ?? parsed.dataset.string(Tags.SOPClassUID) ?? '',
      sopInstanceUid: parsed.meta.string(Tags.MediaStorageSOPInstanceUID) ?? parsed.dataset.string(Tags.SOPInstanceUID) ?? '',
      transferSyntaxUid: to,
      sourceAet: parsed.meta.string(Tags.SourceApplicationEntityTitle),
    });
    return Buffer.concat([meta, dataset]);
  } catch (e) {
    log.info(`instance ${instanceId}: cannot convert to ${to} (${(e as Error).message}); sent as it is`);
    return file;
  }
}

export class PeerStoreJob extends SetOfInstancesJob<PeerStoreState> implements Job {
  readonly type = PEER_STORE_JOB;
  private readonly peer: OrthancPeer;
  private client: PeerClient | undefined;

  constructor(
    state: PeerStoreState,
    private readonly deps: PeerStoreDeps,
  ) {
    super(state);
    this.peer = parsePeer(state.peerName, state.peer, `the peer of an ${PEER_STORE_JOB} job`);
  }

  async step(runtime: JobRuntime): Promise<JobStepResult> {
    const { state } = this;
    if (state.position >= state.instances.length) return StepResult.success();
    const instanceId = state.instances[state.position]!;
    let sent: number;
    try {
      sent = await this.send(instanceId, runtime.signal);
    } catch (e) {
      if (runtime.signal.aborted) throw e;
      const missing = isPacsError(e) && (e.code === 'UnknownResource' || e.code === 'InexistentFile');
      const details = missing
        ? `instance ${instanceId} was deleted after the job was created`
        : isPacsError(e)
          ? (e.details ?? e.message)
          : (e as Error).message;
      log.warn(`${PEER_STORE_JOB} to peer "${state.peerName}": ${details}`);
      if (!state.permissive) {
        // The job fails here, as it was before this step; it may be resubmitted.
        return StepResult.failure(missing ? 'UnknownResource' : isPacsError(e) ? e.code : 'NetworkProtocol', details);
      }
      state.failed.push(instanceId);
      state.position++;
      return state.position >= state.instances.length ? StepResult.success() : StepResult.continue();
    }
    state.size += sent;
    state.position++;
    return state.position >= state.instances.length ? StepResult.success() : StepResult.continue();
  }

  /** Sends one instance; answers the bytes sent. */
  private async send(instanceId: string, signal: AbortSignal): Promise<number> {
    const opened = await this.deps.store.openDicom(instanceId);
    try {
      return await this.post(instanceId, opened, signal);
    } catch (e) {
      // Only after a failure: after a success the file may still be read to its end (the peer can answer once it
      // has the Content-Length bytes, before the stream's 'end' that ends the request and frees the connection).
      if (!Buffer.isBuffer(opened.stream)) opened.stream.destroy();
      throw e;
    }
  }

  private async post(instanceId: string, opened: { stream: Readable | Buffer; size: number }, signal: AbortSignal): Promise<number> {
    const { state, deps } = this;
    let body: Buffer | Readable = opened.stream;
    let length = opened.size;
    if (state.transcode !== undefined || state.compress) {
      let bytes = await readAll(opened.stream);
      if (state.transcode !== undefined) bytes = transcoded(bytes, state.transcode, instanceId);
      if (state.compress) bytes = await gzipAsync(bytes, { level: 9 });
      body = bytes;
      length = bytes.length;
    }
    this.client ??= deps.http.client(this.peer);
    const headers: Record<string, string> = { 'Content-Type': 'application/dicom' };
    if (state.compress) headers['Content-Encoding'] = 'gzip';
    log.verbose(`Sending instance ${instanceId} to peer "${state.peerName}"`);
    const res = await this.client.request({
      method: 'POST',
      path: 'instances',
      body,
      contentLength: length,
      headers,
      signal,
    });
    if (signal.aborted) throw new PacsError('CanceledJob');
    expectSuccess(res, state.peerName, `POST ${displayUrl(this.client.url('instances'))} (instance ${instanceId})`);
    return length;
  }

  /** Orthanc's OrthancPeerStoreJob::GetPublicContent. */
  content(): Record<string, unknown> {
    const { state } = this;
    const content = this.setContent();
    if (state.parentResources.length > 0) content.ParentResources = state.parentResources;
    content.Peer = serializePeer(this.peer, { forceAdvanced: false, includePasswords: false });
    content.Compress = state.compress;
    if (state.transcode !== undefined) content.Transcode = state.transcode;
    content.Size = String(state.size);
    content.SizeMB = Math.floor(state.size / (1024 * 1024));
    return content;
  }

  override reset(): void {
    super.reset();
    this.state.size = 0;
  }

  stop(_reason: JobStopReason): void {
    // Orthanc's Stop: the connection is closed (a paused job reconnects when it resumes).
    this.client?.close();
    this.client = undefined;
  }
}

function isState(value: unknown): value is PeerStoreState {
  const s = value as PeerStoreState;
  return (
    typeof s === 'object' &&
    s !== null &&
    Array.isArray(s.instances) &&
    typeof s.position === 'number' &&
    Array.isArray(s.failed) &&
    typeof s.peerName === 'string' &&
    s.peer !== undefined &&
    typeof s.compress === 'boolean' &&
    typeof s.size === 'number' &&
    Array.isArray(s.parentResources)
  );
}

export function peerStoreJobType(deps: PeerStoreDeps): JobType {
  return {
    name: PEER_STORE_JOB,
    restore(serialized) {
      if (!isState(serialized)) throw new Error(`not a saved ${PEER_STORE_JOB} job`);
      return new PeerStoreJob(serialized, deps);
    },
  };
}
