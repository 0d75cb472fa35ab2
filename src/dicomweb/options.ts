/**
 * The DICOMweb server's options: Orthanc's DICOMweb plugin `DicomWeb` configuration section, with the plugin's
 * defaults. The `DicomWeb` key of `Config` (src/config/schema.ts) holds the section as written in the file.
 */
import type { Config } from '../config/schema.js';

export type MetadataMode = 'Full' | 'MainDicomTags' | 'Extrapolate';

export interface DicomWebOptions {
  enable: boolean;
  /** Always starts and ends with '/'. */
  root: string;
  enableWado: boolean;
  /** WADO-URI route, starts with '/' (no trailing '/'). */
  wadoRoot: string;
  ssl: boolean;
  qidoCaseSensitive: boolean;
  host?: string;
  publicRoot?: string;
  studiesMetadata: MetadataMode;
  seriesMetadata: MetadataMode;
  studiesMetadataExtrapolatedTags: string[];
  seriesMetadataExtrapolatedTags: string[];
  enableMetadataCache: boolean;
  /** pacsnode: URIs in answers without scheme and host. */
  relativeUris: boolean;
}

function slashed(path: string, trailing: boolean): string {
  let p = path.startsWith('/') ? path : `/${path}`;
  if (trailing && !p.endsWith('/')) p += '/';
  if (!trailing) p = p.replace(/\/+$/, '') || '/';
  return p;
}

/** The section as read from the configuration, with the plugin's defaults for what it does not say. */
export function dicomWebOptions(config: Readonly<Config>): DicomWebOptions {
  // Validated by the configuration loader (src/config/load.ts); absent members take the plugin's defaults.
  const section = config.DicomWeb ?? {};
  return {
    enable: section.Enable ?? true,
    root: slashed(section.Root ?? '/dicom-web/', true),
    enableWado: section.EnableWado ?? true,
    wadoRoot: slashed(section.WadoRoot ?? '/wado', false),
    ssl: section.Ssl ?? false,
    qidoCaseSensitive: section.QidoCaseSensitive ?? true,
    host: section.Host === '' ? undefined : section.Host,
    publicRoot: section.PublicRoot === undefined ? undefined : slashed(section.PublicRoot, true),
    studiesMetadata: section.StudiesMetadata ?? 'Full',
    seriesMetadata: section.SeriesMetadata ?? 'Full',
    studiesMetadataExtrapolatedTags: [...(section.StudiesMetadataExtrapolatedTags ?? [])],
    seriesMetadataExtrapolatedTags: [...(section.SeriesMetadataExtrapolatedTags ?? [])],
    enableMetadataCache: section.EnableMetadataCache ?? true,
    relativeUris: section.RelativeUris ?? false,
  };
}
