/**
 * The PS3.6 data dictionary: tag -> VR, VM, keyword, and keyword -> tag. The table is generated and committed
 * (`dictionary-data.ts`, see its header for the source edition); it is parsed once, on first use.
 */
import { DICTIONARY_EDITION, DICTIONARY_ROWS } from './dictionary-data.js';
import { type Tag, makeTag, parseTagString } from './tag.js';

export interface DictionaryEntry {
  tag: Tag;
  /** The VR, with PS3.6's ambiguous ones resolved to the usual choice (see `resolveAmbiguousVr`). */
  vr: string;
  /** The VR as PS3.6 lists it (`ox`, `xs`, `lt`, `up`, `na` for the ambiguous ones). */
  rawVr: string;
  vm: string;
  keyword: string;
  retired: boolean;
}

export { DICTIONARY_EDITION };

let byTag: Map<Tag, DictionaryEntry> | undefined;
let byKeyword: Map<string, DictionaryEntry> | undefined;

/** The usual resolution of an ambiguous VR when nothing else (BitsAllocated, PixelRepresentation) is known. */
export function resolveAmbiguousVr(rawVr: string): string {
  switch (rawVr) {
    case 'ox':
      return 'OW';
    case 'xs':
      return 'US';
    case 'lt':
      return 'OW';
    case 'up':
      return 'UL';
    case 'na':
      return 'UN';
    default:
      return rawVr;
  }
}

/**
 * Corrections to the generated table, in its row format, applied over it: rows where dcmjs 0.52.2 differs from
 * both DCMTK 3.6.7's dicom.dic (the dictionary Orthanc names tags with) and pydicom 2.3.1's, which agree.
 * - VRs: an SQ or OL listed as CS, FD, UL; a count listed as FL (the implicit VR syntax reads them wrong);
 * - keywords misspelled;
 * - retired attributes not marked retired (retirement is never undone). (0010,1000) OtherPatientIDs stays
 *   unmarked: Orthanc, which indexes it, names it without the prefix;
 * - File Meta Information elements missing (RTV, presentation addresses).
 */
const CORRECTIONS = [
  '00020026\tUR\t1\tSourcePresentationAddress',
  '00020027\tUR\t1\tSendingPresentationAddress',
  '00020028\tUR\t1\tReceivingPresentationAddress',
  '00020031\tOB\t1\tRTVMetaInformationVersion',
  '00020032\tUI\t1\tRTVCommunicationSOPClassUID',
  '00020033\tUI\t1\tRTVCommunicationSOPInstanceUID',
  '00020035\tOB\t1\tRTVSourceIdentifier',
  '00020036\tOB\t1\tRTVFlowIdentifier',
  '00020037\tUL\t1\tRTVFlowRTPSamplingRate',
  '00020038\tFD\t1\tRTVFlowActualFrameDuration',
  '00082229\tSQ\t1\tRETIRED_AnatomicStructureSpaceOrRegionSequence',
  '00101090\tLO\t1\tRETIRED_MedicalRecordLocator',
  '00189324\tFD\t1\tRETIRED_EstimatedDoseSaving',
  '00221642\tUL\t1\tNumberOfBscansPerFrame',
  '00400300\tUS\t1\tRETIRED_TotalTimeOfFluoroscopy',
  '00400301\tUS\t1\tRETIRED_TotalNumberOfExposures',
  '0040030E\tSQ\t1\tRETIRED_ExposureDoseSequence',
  '00404007\tSQ\t1\tRETIRED_PerformedProcessingApplicationsCodeSequence',
  '00404020\tCS\t1\tRETIRED_InputAvailabilityFlag',
  '0040A136\tUS\t1-n\tRETIRED_ReferencedFrameNumbers',
  '0040A803\tUL\t1\tNumberOfTableColumns',
  '00480200\tSQ\t1\tRETIRED_ReferencedImageNavigationSequence',
  '00480201\tUS\t2\tRETIRED_TopLeftHandCornerOfLocalizerArea',
  '00480202\tUS\t2\tRETIRED_BottomRightHandCornerOfLocalizerArea',
  '00660023\tOW\t1\tRETIRED_TrianglePointIndexList',
  '00660024\tOW\t1\tRETIRED_EdgePointIndexList',
  '00660025\tOW\t1\tRETIRED_VertexPointIndexList',
  '00660029\tOW\t1\tRETIRED_PrimitivePointIndexList',
  '00660040\tOL\t1\tLongPrimitivePointIndexList',
  '00660041\tOL\t1\tLongTrianglePointIndexList',
  '00660042\tOL\t1\tLongEdgePointIndexList',
  '00660043\tOL\t1\tLongVertexPointIndexList',
  '006862F0\tSQ\t1\tViewOrientationModifierCodeSequence',
  '00701206\tCS\t1\tRETIRED_CompositingMethod',
  '0070150C\tUL\t1\tNumberOfVolumetricCurvePoints',
  '00760034\tSQ\t1\tComponentTypeCodeSequence',
  '30060044\tDS\t1\tRETIRED_ContourSlabThickness',
  '30060045\tDS\t3\tRETIRED_ContourOffsetVector',
  '30060049\tIS\t1-n\tRETIRED_AttachedContours',
  '300600B9\tSQ\t1\tRETIRED_AdditionalRTROIIdentificationCodeSequence',
  '300A000B\tLO\t1-n\tRETIRED_TreatmentSites',
  '300A0082\tDS\t3\tRETIRED_BeamDoseSpecificationPoint',
  '300A008D\tFL\t1\tRETIRED_AverageBeamDosePointDepth',
  '300A008E\tFL\t1\tRETIRED_AverageBeamDosePointEquivalentDepth',
  '300A008F\tFL\t1\tRETIRED_AverageBeamDosePointSSD',
  '300A0632\tSQ\t1\tRETIRED_ReferencedRTPatientSetupSequence',
  '300A0650\tUI\t1\tRETIRED_PatientSetupUID',
  '40101029\tLO\t1-n\tThreatDetectionAlgorithmAndVersion',
];

function addRow(line: string): void {
  const [hex, rawVr, vm, name] = line.split('\t') as [string, string, string, string];
  const tag = parseInt(hex, 16) >>> 0;
  const previous = byTag!.get(tag);
  if (previous) {
    for (const [keyword, entry] of byKeyword!) if (entry === previous) byKeyword!.delete(keyword);
  }
  const retired = name.startsWith('RETIRED_');
  const entry: DictionaryEntry = { tag, vr: resolveAmbiguousVr(rawVr), rawVr, vm, keyword: name, retired };
  byTag!.set(tag, entry);
  byKeyword!.set(name, entry);
  if (retired) {
    const plain = name.slice('RETIRED_'.length);
    if (!byKeyword!.has(plain)) byKeyword!.set(plain, entry);
  }
}

function load(): void {
  byTag = new Map();
  byKeyword = new Map();
  for (const line of DICTIONARY_ROWS.split('\n')) addRow(line);
  for (const line of CORRECTIONS) addRow(line);
}

const REPEATING_GROUPS = new Set([0x5000, 0x6000, 0x7f00]);

/** The entry for a tag, following repeating groups (50xx, 60xx, 7Fxx) and group lengths (gggg,0000). */
export function lookupTag(tag: Tag): DictionaryEntry | undefined {
  if (!byTag) load();
  const direct = byTag!.get(tag);
  if (direct) return direct;
  const group = tag >>> 16;
  const element = tag & 0xffff;
  if (element === 0 && group % 2 === 0) {
    return { tag, vr: 'UL', rawVr: 'UL', vm: '1', keyword: 'GenericGroupLength', retired: false };
  }
  const base = group & 0xff00;
  if (REPEATING_GROUPS.has(base) && group % 2 === 0) {
    const entry = byTag!.get(makeTag(base, element));
    if (entry) return { ...entry, tag };
  }
  return undefined;
}

/** The tag of a keyword (`PatientName`) or of a tag string (`0010,0010`, `00100010`). */
export function tagFromKeywordOrString(text: string): Tag | undefined {
  const parsed = parseTagString(text);
  if (parsed !== undefined) return parsed;
  if (!byKeyword) load();
  return byKeyword!.get(text)?.tag;
}

/** The VR of a tag, `UN` when the dictionary does not know it (private tags other than creators). */
export function vrOf(tag: Tag): string {
  const entry = lookupTag(tag);
  if (entry) return entry.vr;
  const element = tag & 0xffff;
  if ((tag >>> 16) % 2 === 1 && element >= 0x0010 && element <= 0x00ff) return 'LO'; // private creator
  return 'UN';
}

/** The keyword (`PatientName`), or undefined for unknown and private tags. */
export function keywordOf(tag: Tag): string | undefined {
  return lookupTag(tag)?.keyword;
}
