/**
 * THE SEAM between the DICOM network layer and the application (Orthanc's IStoreRequestHandler & co.): the SCPs
 * in `dimse/scp/*` call these interfaces; `app/dicom-handlers.ts` implements them over the store, the query engine
 * and the SCUs. `dimse/` never imports `store/`, `query/` or `app/`.
 *
 * Handlers return DIMSE statuses; a handler that throws is turned into a failure status by the SCP (the
 * association goes on).
 */
import type { Readable } from 'node:stream';
import type { DataSet } from '../dicom/dataset.js';
import type { WriteElement } from '../dicom/writer.js';
import type { DicomTls } from '../net/tls.js';

/** What the SCPs know of the association a request arrived on. */
export interface AssociationInfo {
  /** A small integer identifying the association in logs (`CALLING->CALLED#id`). */
  id: number;
  callingAet: string;
  calledAet: string;
  remoteAddress: string;
}

export interface EchoHandler {
  echo(assoc: AssociationInfo): Promise<number>;
}

export interface StoreRequest {
  sopClassUid: string;
  sopInstanceUid: string;
  /** The transfer syntax of the presentation context the dataset arrived in. */
  transferSyntaxUid: string;
  /**
   * The dataset bytes as received (no meta header), streamed as the PDVs arrive. When `datasetFragments` is set,
   * this is a stream of those fragments, made only if read.
   */
  dataset: Readable;
  /**
   * The whole dataset as its received fragments, in order, when it ended within the SCP's in-memory limit (nearly
   * every instance): no stream is then needed. Undefined for a large dataset, which is streamed through `dataset`.
   */
  datasetFragments?: readonly Buffer[];
  /** Set when the store is a sub-operation of a C-MOVE (PS3.7 §9.1.1.1). */
  moveOriginator?: { aet: string; messageId: number };
}

export interface StoreHandler {
  store(request: StoreRequest, assoc: AssociationInfo): Promise<number>;
}

export interface FindRequest {
  /** The information model (Patient Root, Study Root...) of the presentation context. */
  sopClassUid: string;
  /** The Identifier: QueryRetrieveLevel, matching keys (with values) and return keys (empty). */
  identifier: DataSet;
}

export interface FindHandler {
  /**
   * The answers, one Identifier each (only the requested keys, plus QueryRetrieveLevel and SpecificCharacterSet).
   * Stops early when `signal` is aborted (C-CANCEL). Throwing a `FindRefusal` answers its status.
   */
  find(request: FindRequest, assoc: AssociationInfo, signal: AbortSignal): AsyncIterable<WriteElement[]>;
}

/** A C-FIND the handler refuses with a specific status (e.g. 0xA900 identifier does not match SOP class). */
export class FindRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'FindRefusal';
  }
}

/** One instance a C-GET or C-MOVE designates. */
export interface RetrieveItem {
  sopClassUid: string;
  sopInstanceUid: string;
  /** The transfer syntax the instance is stored in. */
  transferSyntaxUid: string;
  /** The dataset bytes as stored (no meta header), read when the sub-operation runs. */
  readDataset(): Promise<Buffer>;
  /** The whole Part 10 file as stored. */
  readFile(): Promise<Buffer>;
}

/** Where a C-MOVE sends its sub-operations. */
export interface MoveDestination {
  aet: string;
  host: string;
  port: number;
  /** DICOM TLS credentials when the destination is reached over TLS (Orthanc's UseDicomTls). */
  tls?: DicomTls;
}

export interface RetrieveHandler {
  /**
   * The instances an Identifier designates (PS3.4 C.4.2.1.4: QueryRetrieveLevel and the unique keys down to it).
   * Throwing a `FindRefusal` answers its status (e.g. 0xA900, 0xC000).
   */
  locate(request: FindRequest, assoc: AssociationInfo): Promise<RetrieveItem[]>;
  /** A C-MOVE destination by AE title (Orthanc: a modality of DicomModalities), or undefined (status A801). */
  destination(aet: string): MoveDestination | undefined;
  /**
   * Asynchronous C-MOVE (SynchronousCMove false): queue the sub-operations (as a job) and return at once; the
   * C-MOVE is then answered Success. Without it, they run in the background of the association.
   */
  startMove?(request: FindRequest, destination: MoveDestination, originator: { aet: string; messageId: number }, assoc: AssociationInfo): Promise<void>;
  /** The AE title this server calls destinations with. */
  readonly localAet: string;
  /** Orthanc's SynchronousCMove: answer after the sub-operations (true) or at once, sending in the background. */
  readonly synchronousMove: boolean;
  /** DIMSE timeout for the sub-operations' association, in ms (Orthanc's DicomScuTimeout). */
  readonly scuTimeoutMs: number;
}

/** Decides whether an association is accepted (Orthanc's IApplicationEntityFilter). */
export interface AssociationPolicy {
  /**
   * Accept or reject an association request. A rejection carries PS3.8 §9.3.4 values:
   * result 1 permanent / 2 transient; source 1 service user; reason 1 no reason, 3 calling AE not recognized,
   * 7 called AE not recognized.
   */
  acceptAssociation(request: {
    callingAet: string;
    calledAet: string;
    remoteAddress: string;
  }): { accept: true } | { accept: false; result: 1 | 2; source: 1 | 2 | 3; reason: number };
  /**
   * Transfer syntaxes accepted for an abstract syntax from this caller (empty: the SOP class is refused, e.g.
   * because the caller may not use its service).
   */
  transferSyntaxesFor(abstractSyntax: string, assoc: AssociationInfo, roles?: { requestorIsScp: boolean }): readonly string[];
  /** Whether a request of this kind from this peer is allowed (Orthanc's AllowEcho, AllowStore, ...). */
  isAllowed(kind: 'echo' | 'store' | 'find' | 'move' | 'get', assoc: AssociationInfo): boolean;
}

export interface DicomHandlers {
  policy: AssociationPolicy;
  echo: EchoHandler;
  store: StoreHandler;
  find: FindHandler;
  retrieve: RetrieveHandler;
}
