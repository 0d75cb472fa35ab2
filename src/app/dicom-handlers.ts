/**
 * The application's side of the DIMSE seam (`dimse/handlers.ts`), over the store: what Orthanc's
 * OrthancStoreRequestHandler and its application-entity filter do. C-STORE streams the received dataset, behind a
 * meta header built from the presentation context, into the one ingestion path.
 */
import { isPacsError } from '../core/errors.js';
import { logger } from '../core/log.js';
import { ALL_TRANSFER_SYNTAXES, ExplicitVRLittleEndian, ImplicitVRLittleEndian } from '../dicom/transfer-syntax.js';
import { isStorageSopClass, SopClasses } from '../dicom/uids.js';
import { buildMetaHeader } from '../dicom/writer.js';
import { FindRefusal, type AssociationInfo, type DicomHandlers, type FindRequest, type StoreRequest } from '../dimse/handlers.js';
import { part10DatasetOffset } from '../dicom/reader.js';
import { Tags } from '../dicom/tag.js';
import type { DicomService } from '../modalities/registry.js';
import { Level } from '../store/levels.js';
import { takeInput } from '../store/input.js';
import { MetadataType } from '../store/sqlite-index.js';
import { IdentifierError, identifiersOf, queryFromIdentifier } from '../query/from-identifier.js';
import { Status } from '../dimse/status.js';
import type { AppContext } from './context.js';
import { ModalityStoreJob } from './modality-store-job.js';

const log = logger('dicom');

/** Every transfer syntax pacsnode can store as received: the uncompressed ones first, then the others. */
const STORAGE_SYNTAXES = ALL_TRANSFER_SYNTAXES.map((t) => t.uid);
const UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian];
const FIND_MODELS = new Set<string>([SopClasses.PatientRootFind, SopClasses.StudyRootFind, SopClasses.PatientStudyOnlyFind]);
const GET_MODELS = new Set<string>([SopClasses.PatientRootGet, SopClasses.StudyRootGet, SopClasses.PatientStudyOnlyGet]);
const MOVE_MODELS = new Set<string>([SopClasses.PatientRootMove, SopClasses.StudyRootMove, SopClasses.PatientStudyOnlyMove]);
const STUDY_ROOT = new Set<string>([SopClasses.StudyRootFind, SopClasses.StudyRootGet, SopClasses.StudyRootMove]);
/** Answers are read and sent in pages, so that a C-CANCEL stops them between two pages. */
const ANSWER_PAGE = 100;


/** The DIMSE service an abstract syntax belongs to, if pacsnode offers it. */
function serviceOf(abstractSyntax: string, unknownSopClassAccepted: boolean): DicomService | undefined {
  if (abstractSyntax === SopClasses.Verification) return 'echo';
  if (FIND_MODELS.has(abstractSyntax)) return 'find';
  if (GET_MODELS.has(abstractSyntax)) return 'get';
  if (MOVE_MODELS.has(abstractSyntax)) return 'move';
  if (isStorageSopClass(abstractSyntax)) return 'store';
  // Any other UID that is not a known service class is taken as a private storage class when allowed.
  if (unknownSopClassAccepted && !abstractSyntax.startsWith('1.2.840.10008.5.1.4.1.2.')) return 'store';
  return undefined;
}

export function createDicomHandlers(ctx: AppContext): DicomHandlers {
  const { config, store } = ctx;
  /** The instances a C-GET/C-MOVE Identifier designates. */
  const locateInstances = async (request: FindRequest) => {
    let parsed;
    try {
      parsed = queryFromIdentifier(request.identifier, { studyRoot: STUDY_ROOT.has(request.sopClassUid), caseSensitive: true });
    } catch (e) {
      if (e instanceof IdentifierError) throw new FindRefusal(Status.DataSetDoesNotMatchSOPClass, e.message);
      throw e;
    }
    const rows = await ctx.engine.find(parsed.query);
    return rows.flatMap((row) => ctx.index.descendants(row.id, row.level, Level.Instance));
  };
  return {
    policy: {
      acceptAssociation: (request) => {
        const verdict = ctx.modalities.isAllowedConnection(request.callingAet, request.calledAet, request.remoteAddress);
        if (verdict === 'called') return { accept: false, result: 1, source: 1, reason: 7 }; // called AE not recognized
        if (verdict === 'calling') return { accept: false, result: 1, source: 1, reason: 3 }; // calling AE not recognized
        return { accept: true };
      },
      transferSyntaxesFor: (abstractSyntax, assoc, roles) => {
        const service = serviceOf(abstractSyntax, ctx.dicomSettings.unknownSopClassAccepted);
        if (!service) return [];
        const allowed = (kind: DicomService) => ctx.modalities.isAllowedRequest(kind, assoc.callingAet, assoc.remoteAddress);
        // Storage contexts also carry C-GET's sub-operations (the requestor proposing the SCP role) for a caller
        // allowed to C-GET: C-GET sends stored files as they are, so those contexts are offered every syntax; C-STORE
        // contexts only the accepted ones (AcceptedTransferSyntaxes, /tools/accepted-transfer-syntaxes).
        if (service === 'store') {
          if (roles?.requestorIsScp && allowed('get')) return STORAGE_SYNTAXES;
          return allowed('store') ? ctx.dicomSettings.acceptedTransferSyntaxes : allowed('get') ? STORAGE_SYNTAXES : [];
        }
        return allowed(service) ? UNCOMPRESSED : [];
      },
      isAllowed: (kind, assoc) => ctx.modalities.isAllowedRequest(kind, assoc.callingAet, assoc.remoteAddress),
    },
    echo: {
      echo: async () => Status.Success,
    },
    find: {
      async *find(request, assoc, signal) {
        let parsed;
        try {
          parsed = queryFromIdentifier(request.identifier, { studyRoot: STUDY_ROOT.has(request.sopClassUid), caseSensitive: true });
        } catch (e) {
          if (e instanceof IdentifierError) throw new FindRefusal(Status.DataSetDoesNotMatchSOPClass, e.message);
          throw e;
        }
        const rows = await ctx.engine.find(parsed.query);
        log.verbose(`${assoc.callingAet}->${assoc.calledAet}#${assoc.id} C-FIND: ${rows.length} match(es)`);
        for (let i = 0; i < rows.length && !signal.aborted; i += ANSWER_PAGE) {
          const page = rows.slice(i, i + ANSWER_PAGE);
          yield* await identifiersOf(ctx.engine, page, parsed.query.level, parsed.requested, {
            readFiles: config.StorageAccessOnFind !== 'Never',
          });
        }
      },
    },
    retrieve: {
      async locate(request) {
        const instances = await locateInstances(request);
        const ids = instances.map((r) => r.id);
        const sopClasses = ctx.index.metadataOf(ids, MetadataType.SopClassUid);
        const syntaxes = ctx.index.metadataOf(ids, MetadataType.TransferSyntax);
        const uids = ctx.index.mainTagsOf(ids);
        return instances.map((row) => ({
          sopClassUid: sopClasses.get(row.id) ?? '',
          sopInstanceUid: uids.get(row.id)?.get(Tags.SOPInstanceUID) ?? '',
          transferSyntaxUid: syntaxes.get(row.id) ?? '',
          readDataset: async () => {
            const file = await store.readDicom(row.publicId);
            // Stored files were checked whole on the way in (and their size is checked on reading): only where
            // the dataset starts is needed.
            return file.subarray(part10DatasetOffset(file));
          },
          readFile: () => store.readDicom(row.publicId),
        }));
      },
      async startMove(request, destination, originator) {
        const instances = await locateInstances(request);
        const [modality] = ctx.modalities.byAet(destination.aet);
        const job = new ModalityStoreJob(
          {
            instances: instances.map((r) => r.publicId),
            position: 0,
            failed: [],
            remote: { aet: destination.aet, host: destination.host, port: destination.port, useTls: modality?.useDicomTls ?? false },
            localAet: config.DicomAet,
            description: 'C-MOVE',
            permissive: false,
            moveOriginator: originator,
            parentResources: [],
          },
          ctx.modalityStoreDeps,
        );
        const id = ctx.jobs.submit(job);
        log.info(`C-MOVE of ${instances.length} instance(s) to ${destination.aet} queued as job ${id}`);
      },
      destination: (aet) => {
        const [modality] = ctx.modalities.byAet(aet);
        if (!modality) return undefined;
        // The sub-operations open their own association: one a store job kept open to this node goes first, since
        // many nodes (storescp) serve one association at a time. The A-RELEASE-RQ leaves at once.
        void ctx.scuPool.releaseNode(modality.host, modality.port);
        // UseDicomTls: our DicomTls* credentials, read on first use (a bad file fails this C-MOVE, naming the key).
        return { aet: modality.aet, host: modality.host, port: modality.port, tls: modality.useDicomTls ? ctx.requestorTls() : undefined };
      },
      localAet: config.DicomAet,
      synchronousMove: config.SynchronousCMove,
      scuTimeoutMs: config.DicomScuTimeout * 1000,
    },
    store: {
      store: async (request: StoreRequest, assoc: AssociationInfo) => {
        // A caller allowed to C-GET is offered every syntax on storage contexts (its sub-operations need them): a
        // C-STORE of its own in a syntax AcceptedTransferSyntaxes leaves out is refused here.
        if (!ctx.dicomSettings.accepts(request.transferSyntaxUid)) {
          if (!request.datasetFragments) request.dataset.resume();
          log.warn(`${assoc.callingAet}->${assoc.calledAet}#${assoc.id} C-STORE refused: transfer syntax ${request.transferSyntaxUid} is not accepted`);
          return Status.CannotUnderstand;
        }
        const meta = buildMetaHeader({
          sopClassUid: request.sopClassUid,
          sopInstanceUid: request.sopInstanceUid,
          transferSyntaxUid: request.transferSyntaxUid,
          sourceAet: assoc.callingAet,
        });
        try {
          // A dataset received whole (nearly all) becomes the file in one copy; a large one is streamed.
          const fragments = request.datasetFragments;
          const input = fragments
            ? Buffer.concat([meta, ...fragments])
            : (await takeInput(request.dataset as AsyncIterable<Buffer>, { prefix: meta })).input;
          const result = await store.store(input, {
            kind: 'dimse',
            remoteAet: assoc.callingAet,
            calledAet: assoc.calledAet,
            remoteIp: assoc.remoteAddress,
          });
          log.verbose(`${assoc.callingAet}->${assoc.calledAet}#${assoc.id} C-STORE ${result.Status}`);
          return Status.Success;
        } catch (e) {
          if (!request.datasetFragments) request.dataset.resume(); // drain what is left, so the association goes on
          log.warn(`${assoc.callingAet}->${assoc.calledAet}#${assoc.id} C-STORE refused: ${(e as Error).message}`);
          if (isPacsError(e) && e.code === 'FullStorage') return Status.OutOfResources;
          if (isPacsError(e) && e.code === 'BadFileFormat') return Status.CannotUnderstand;
          return Status.ProcessingFailure;
        }
      },
    },
  };
}
