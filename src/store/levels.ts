/**
 * Resource levels and Orthanc's main DICOM tags per level (Orthanc DicomMap: PATIENT/STUDY/SERIES/INSTANCE
 * _MAIN_DICOM_TAGS), plus `ExtraMainDicomTags` from the configuration.
 */
import { PacsError } from '../core/errors.js';
import { tagFromKeywordOrString } from '../dicom/dictionary.js';
import { Tags, type Tag } from '../dicom/tag.js';

export enum Level {
  Patient = 0,
  Study = 1,
  Series = 2,
  Instance = 3,
}

export const LEVELS = [Level.Patient, Level.Study, Level.Series, Level.Instance] as const;

/** Orthanc's names: `Patient`, `Study`, `Series`, `Instance`. */
export const LEVEL_NAMES = ['Patient', 'Study', 'Series', 'Instance'] as const;
export type LevelName = (typeof LEVEL_NAMES)[number];

/** URI segments: `patients`, `studies`, `series`, `instances`. */
export const LEVEL_PATHS = ['patients', 'studies', 'series', 'instances'] as const;


/** Parses `Patient`/`patients`/`PATIENT`/`Study`/... ; throws a 400 error otherwise. */
export function parseLevel(text: string): Level {
  const t = text.trim().toLowerCase();
  const i = (LEVEL_NAMES as readonly string[]).findIndex((n) => n.toLowerCase() === t);
  if (i >= 0) return i as Level;
  const j = (LEVEL_PATHS as readonly string[]).indexOf(t);
  if (j >= 0) return j as Level;
  if (t === 'image') return Level.Instance;
  throw new PacsError('ParameterOutOfRange', `unknown resource level: ${text}`, { httpStatus: 400 });
}

const T = Tags;

export const DEFAULT_MAIN_DICOM_TAGS: readonly (readonly Tag[])[] = [
  [T.PatientName, T.PatientBirthDate, T.PatientSex, T.OtherPatientIDs, T.PatientID],
  [
    T.StudyDate, T.StudyTime, T.StudyID, T.StudyDescription, T.AccessionNumber, T.StudyInstanceUID,
    T.RequestedProcedureDescription, T.InstitutionName, T.RequestingPhysician, T.ReferringPhysicianName,
  ],
  [
    T.SeriesDate, T.SeriesTime, T.Modality, T.Manufacturer, T.StationName, T.SeriesDescription,
    T.BodyPartExamined, T.SequenceName, T.ProtocolName, T.SeriesNumber, T.CardiacNumberOfImages,
    T.ImagesInAcquisition, T.NumberOfTemporalPositions, T.NumberOfSlices, T.NumberOfTimeSlices,
    T.SeriesInstanceUID, T.ImageOrientationPatient, 0x00541000 /* SeriesType */, T.OperatorsName,
    0x00400254 /* PerformedProcedureStepDescription */, T.AcquisitionDeviceProcessingDescription,
    T.ContrastBolusAgent,
  ],
  [
    T.InstanceCreationDate, T.InstanceCreationTime, T.AcquisitionNumber, 0x00541330 /* ImageIndex */,
    T.InstanceNumber, T.NumberOfFrames, T.TemporalPositionIdentifier, T.SOPInstanceUID,
    T.ImagePositionPatient, T.ImageComments, T.ImageOrientationPatient,
  ],
];

/** The identifier tag of each level. */
export const LEVEL_IDENTIFIER: readonly Tag[] = [T.PatientID, T.StudyInstanceUID, T.SeriesInstanceUID, T.SOPInstanceUID];

export interface MainTagsConfig {
  Patient: readonly string[];
  Study: readonly string[];
  Series: readonly string[];
  Instance: readonly string[];
}

/** Main tags per level: Orthanc's defaults plus `ExtraMainDicomTags` (unknown names are an error). */
export function mainDicomTags(extra?: MainTagsConfig): Tag[][] {
  return LEVELS.map((level) => {
    const tags = [...DEFAULT_MAIN_DICOM_TAGS[level]!];
    const names = extra ? extra[LEVEL_NAMES[level]] : [];
    for (const name of names) {
      const tag = tagFromKeywordOrString(name);
      if (tag === undefined) {
        throw new PacsError('ParameterOutOfRange', `ExtraMainDicomTags: unknown tag ${name}`);
      }
      if (!tags.includes(tag)) tags.push(tag);
    }
    return tags;
  });
}
