/**
 * Tags are plain numbers `(group << 16) | element` (unsigned). Helpers parse and format the text forms used by
 * DICOM JSON (`00100010`), Orthanc (`0010,0010`) and DCMTK (`(0010,0010)`).
 */
export type Tag = number;

export function makeTag(group: number, element: number): Tag {
  return ((group << 16) | element) >>> 0;
}

export function tagGroup(tag: Tag): number {
  return tag >>> 16;
}

export function tagElement(tag: Tag): number {
  return tag & 0xffff;
}

export function isPrivateTag(tag: Tag): boolean {
  return (tag >>> 16) % 2 === 1;
}

/** `gggg,eeee` in lower case, as Orthanc writes it. */
export function formatTagOrthanc(tag: Tag): string {
  const h = (tag >>> 0).toString(16).padStart(8, '0');
  return `${h.slice(0, 4)},${h.slice(4)}`;
}

/** `GGGGEEEE` in upper case, as DICOM JSON writes it. */
export function formatTagJson(tag: Tag): string {
  return (tag >>> 0).toString(16).padStart(8, '0').toUpperCase();
}

const TAG_RE = /^\(?([0-9a-fA-F]{4})[,|]?([0-9a-fA-F]{4})\)?$/;

/** Parses `gggg,eeee`, `(gggg,eeee)`, `ggggeeee` or `gggg|eeee`; returns undefined when it is none of them. */
export function parseTagString(text: string): Tag | undefined {
  const m = TAG_RE.exec(text.trim());
  if (!m) return undefined;
  return makeTag(parseInt(m[1]!, 16), parseInt(m[2]!, 16));
}

// Tags pacsnode refers to by name. Values from PS3.6.
export const Tags = {
  FileMetaInformationGroupLength: 0x00020000,
  MediaStorageSOPClassUID: 0x00020002,
  MediaStorageSOPInstanceUID: 0x00020003,
  TransferSyntaxUID: 0x00020010,
  ImplementationClassUID: 0x00020012,
  ImplementationVersionName: 0x00020013,
  SourceApplicationEntityTitle: 0x00020016,
  SpecificCharacterSet: 0x00080005,
  ImageType: 0x00080008,
  InstanceCreationDate: 0x00080012,
  InstanceCreationTime: 0x00080013,
  SOPClassUID: 0x00080016,
  SOPInstanceUID: 0x00080018,
  StudyDate: 0x00080020,
  SeriesDate: 0x00080021,
  AcquisitionDate: 0x00080022,
  ContentDate: 0x00080023,
  StudyTime: 0x00080030,
  SeriesTime: 0x00080031,
  AcquisitionTime: 0x00080032,
  ContentTime: 0x00080033,
  AccessionNumber: 0x00080050,
  QueryRetrieveLevel: 0x00080052,
  RetrieveAETitle: 0x00080054,
  InstanceAvailability: 0x00080056,
  Modality: 0x00080060,
  ModalitiesInStudy: 0x00080061,
  SOPClassesInStudy: 0x00080062,
  Manufacturer: 0x00080070,
  InstitutionName: 0x00080080,
  ReferringPhysicianName: 0x00080090,
  TimezoneOffsetFromUTC: 0x00080201,
  StationName: 0x00081010,
  StudyDescription: 0x00081030,
  SeriesDescription: 0x0008103e,
  PerformingPhysicianName: 0x00081050,
  OperatorsName: 0x00081070,
  ManufacturerModelName: 0x00081090,
  RequestingPhysician: 0x00321032,
  RequestedProcedureDescription: 0x00321060,
  PatientName: 0x00100010,
  PatientID: 0x00100020,
  IssuerOfPatientID: 0x00100021,
  PatientBirthDate: 0x00100030,
  PatientSex: 0x00100040,
  OtherPatientIDs: 0x00101000,
  PatientAge: 0x00101010,
  BodyPartExamined: 0x00180015,
  SequenceName: 0x00180024,
  ProtocolName: 0x00181030,
  CardiacNumberOfImages: 0x00181090,
  ImagesInAcquisition: 0x00201002,
  StudyInstanceUID: 0x0020000d,
  SeriesInstanceUID: 0x0020000e,
  StudyID: 0x00200010,
  SeriesNumber: 0x00200011,
  AcquisitionNumber: 0x00200012,
  InstanceNumber: 0x00200013,
  ImagePositionPatient: 0x00200032,
  ImageOrientationPatient: 0x00200037,
  NumberOfTemporalPositions: 0x00200105,
  ImageComments: 0x00204000,
  NumberOfPatientRelatedStudies: 0x00201200,
  NumberOfPatientRelatedSeries: 0x00201202,
  NumberOfPatientRelatedInstances: 0x00201204,
  NumberOfStudyRelatedSeries: 0x00201206,
  NumberOfStudyRelatedInstances: 0x00201208,
  NumberOfSeriesRelatedInstances: 0x00201209,
  NumberOfSlices: 0x00540081,
  NumberOfTimeSlices: 0x00540101,
  SamplesPerPixel: 0x00280002,
  PhotometricInterpretation: 0x00280004,
  NumberOfFrames: 0x00280008,
  Rows: 0x00280010,
  Columns: 0x00280011,
  BitsAllocated: 0x00280100,
  BitsStored: 0x00280101,
  PixelRepresentation: 0x00280103,
  AcquisitionDeviceProcessingDescription: 0x00181400,
  ContrastBolusAgent: 0x00180010,
  TemporalPositionIdentifier: 0x00200100,
  ReferencedSOPClassUID: 0x00081150,
  ReferencedSOPInstanceUID: 0x00081155,
  FailedSOPInstanceUIDList: 0x00080058,
  PixelData: 0x7fe00010,
  FloatPixelData: 0x7fe00008,
  DoubleFloatPixelData: 0x7fe00009,
  Item: 0xfffee000,
  ItemDelimitationItem: 0xfffee00d,
  SequenceDelimitationItem: 0xfffee0dd,
} as const;
