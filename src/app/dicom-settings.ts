/**
 * The DICOM server's settings that Orthanc lets the REST API change while it runs (`/tools/accepted-transfer-syntaxes`,
 * `/tools/unknown-sop-class-accepted`): read from the configuration at start, changed in memory afterwards (as in
 * Orthanc, a change is not written back to the configuration file and is lost at restart). New associations see a
 * change at once; associations already established keep what they negotiated.
 */
import { isPacsError, PacsError } from '../core/errors.js';
import type { Config } from '../config/schema.js';
import {
  ALL_TRANSFER_SYNTAXES,
  DeflatedExplicitVRLittleEndian,
  ExplicitVRBigEndian,
  ExplicitVRLittleEndian,
  ImplicitVRLittleEndian,
} from '../dicom/transfer-syntax.js';

/** Orthanc's legacy booleans (before `AcceptedTransferSyntaxes`, 1.9.0) and the transfer syntaxes each one covers. */
const LEGACY_GROUPS: ReadonlyArray<readonly [keyof Config, (uid: string) => boolean]> = [
  ['DeflatedTransferSyntaxAccepted', (uid) => uid === DeflatedExplicitVRLittleEndian],
  // Every JPEG process (lossless 14 and 14 SV1 included); "JpegLossless" is JPEG-LS, as in Orthanc's DicomServer.
  ['JpegTransferSyntaxAccepted', (uid) => /^1\.2\.840\.10008\.1\.2\.4\.(5\d|6\d|70)$/.test(uid)],
  ['JpegLosslessTransferSyntaxAccepted', (uid) => /^1\.2\.840\.10008\.1\.2\.4\.8[01]$/.test(uid)],
  ['Jpeg2000TransferSyntaxAccepted', (uid) => /^1\.2\.840\.10008\.1\.2\.4\.(9[0-3]|20[1-3])$/.test(uid)],
  ['JpipTransferSyntaxAccepted', (uid) => /^1\.2\.840\.10008\.1\.2\.4\.9[45]$/.test(uid)],
  ['Mpeg2TransferSyntaxAccepted', (uid) => /^1\.2\.840\.10008\.1\.2\.4\.10[01]$/.test(uid)],
  ['Mpeg4TransferSyntaxAccepted', (uid) => /^1\.2\.840\.10008\.1\.2\.4\.10[2-6]$/.test(uid)],
  ['H265TransferSyntaxAccepted', (uid) => /^1\.2\.840\.10008\.1\.2\.4\.10[78]$/.test(uid)],
  ['RleTransferSyntaxAccepted', (uid) => uid === '1.2.840.10008.1.2.5'],
];

/** The uncompressed syntaxes, always accepted in Orthanc's legacy mode. */
const ALWAYS_IN_LEGACY = new Set([ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, '1.2.840.10008.1.2.1.98']);

/** `*` any run of characters, `?` one character, as Orthanc's wildcards in `AcceptedTransferSyntaxes`. */
function wildcard(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

/**
 * The transfer syntaxes (in pacsnode's table order) a list of UIDs or wildcard patterns designates. A plain UID that
 * pacsnode does not know is an error, as in Orthanc; a pattern may match nothing.
 */
export function transferSyntaxesMatching(patterns: readonly string[]): string[] {
  const chosen = new Set<string>();
  for (const pattern of patterns) {
    if (/[*?]/.test(pattern)) {
      const re = wildcard(pattern);
      for (const ts of ALL_TRANSFER_SYNTAXES) if (re.test(ts.uid)) chosen.add(ts.uid);
    } else if (ALL_TRANSFER_SYNTAXES.some((ts) => ts.uid === pattern)) {
      chosen.add(pattern);
    } else {
      throw new PacsError('ParameterOutOfRange', `unknown transfer syntax: ${pattern}`);
    }
  }
  return ALL_TRANSFER_SYNTAXES.map((ts) => ts.uid).filter((uid) => chosen.has(uid));
}

/** What the configuration accepts: `AcceptedTransferSyntaxes` when given, else the legacy booleans. */
export function configuredTransferSyntaxes(config: Readonly<Config>): string[] {
  if (config.AcceptedTransferSyntaxes !== undefined) {
    try {
      return transferSyntaxesMatching(config.AcceptedTransferSyntaxes);
    } catch (e) {
      throw new PacsError('BadFileFormat', `AcceptedTransferSyntaxes: ${isPacsError(e) ? e.details : (e as Error).message}`);
    }
  }
  return ALL_TRANSFER_SYNTAXES.map((ts) => ts.uid).filter(
    (uid) => ALWAYS_IN_LEGACY.has(uid) || LEGACY_GROUPS.some(([key, covers]) => config[key] === true && covers(uid)),
  );
}

export class DicomSettings {
  /** `UnknownSopClassAccepted`. */
  unknownSopClassAccepted: boolean;
  private accepted: string[];
  private acceptedSet: ReadonlySet<string>;

  constructor(config: Readonly<Config>) {
    this.unknownSopClassAccepted = config.UnknownSopClassAccepted;
    this.accepted = configuredTransferSyntaxes(config);
    this.acceptedSet = new Set(this.accepted);
  }

  /** Whether the C-STORE SCP accepts this transfer syntax (checked for every instance received). */
  accepts(transferSyntaxUid: string): boolean {
    return this.acceptedSet.has(transferSyntaxUid);
  }

  /** The transfer syntaxes the C-STORE SCP accepts, in pacsnode's preference order. */
  get acceptedTransferSyntaxes(): readonly string[] {
    return this.accepted;
  }

  /** Replaces them (UIDs or wildcard patterns); answers the new list. */
  setAcceptedTransferSyntaxes(patterns: readonly string[]): readonly string[] {
    this.accepted = transferSyntaxesMatching(patterns);
    this.acceptedSet = new Set(this.accepted);
    return this.accepted;
  }
}
