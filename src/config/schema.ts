/**
 * The typed configuration. Property names are Orthanc's configuration keys, so a user's `orthanc.json` works
 * as it is (docs/configuration.md lists what is supported). `DEFAULT_CONFIG` holds the embedded defaults that
 * `pacsnode serve` runs with when no file is given.
 */

export type MaximumStorageMode = 'Recycle' | 'Reject';

/** `ExtraMainDicomTags`: tag keywords or `gggg,eeee` strings per level. */
export interface ExtraMainDicomTags {
  Patient: string[];
  Study: string[];
  Series: string[];
  Instance: string[];
}

export interface Config {
  /** Server name shown by `/system`. */
  Name: string;
  HttpPort: number;
  DicomPort: number;
  DicomAet: string;
  /** Folder of the storage area (DICOM files and attachments). */
  StorageDirectory: string;
  /** Folder of the SQLite index; defaults to `StorageDirectory`. */
  IndexDirectory: string;
  /** zlib-compress the attachments written to the storage area. */
  StorageCompression: boolean;
  /** In MB; 0 means no limit. */
  MaximumStorageSize: number;
  /** 0 means no limit. */
  MaximumPatientCount: number;
  MaximumStorageMode: MaximumStorageMode;
  OverwriteInstances: boolean;
  /** Seconds without a new instance after which a patient, study or series becomes stable. */
  StableAge: number;
  /** Name -> number (>= 1024) of the user-defined metadata. */
  UserMetadata: Record<string, number>;
  /** Name -> number (>= 1024) of the user-defined attachments; a value may be `[number, mimeType]`. */
  UserContentType: Record<string, number | [number, string]>;
  ExtraMainDicomTags: ExtraMainDicomTags;
  /** Encoding used for datasets without SpecificCharacterSet (Orthanc names: Latin1, Utf8, Ascii, ...). */
  DefaultEncoding: string;
  CheckRevisions: boolean;
  RemoteAccessAllowed: boolean;
  AuthenticationEnabled: boolean;
  /** User name -> password (HTTP Basic). */
  RegisteredUsers: Record<string, string>;
  /** fsync every file written to the storage area before it is indexed. */
  SyncStorageArea: boolean;
  /**
   * pacsnode option: commit every index transaction with a disk flush (SQLite synchronous=FULL). Off, the index
   * (WAL, synchronous=NORMAL) is safe against a process crash but may lose its last commits on a power loss.
   */
  SyncIndex: boolean;
  /** `Always`, `Answers` or `Never`: whether a query may read stored files for tags not in the index. */
  StorageAccessOnFind: 'Always' | 'Answers' | 'Never';
  /** Maximum number of results of /tools/find and C-FIND (0 = no limit). */
  LimitFindResults: number;
  LimitFindInstances: number;
  /** Bind address for HTTP when remote access is allowed. */
  HttpBindAddress?: string;
  /** Largest accepted HTTP request body, in MB (0 = no limit). */
  MaximumHttpBodySize: number;
  /** Run the DICOM server (C-ECHO, C-STORE SCP) on DicomPort. */
  DicomServerEnabled: boolean;
  /** Refuse associations whose called AE title is not DicomAet. */
  DicomCheckCalledAet: boolean;
  /** Seconds without traffic after which an established DICOM association is aborted. */
  DicomScpTimeout: number;
  /** Our Maximum Length for received PDUs (bytes). */
  MaximumPduLength: number;
  /** Accept SOP classes that are not standard storage classes, for storage. */
  UnknownSopClassAccepted: boolean;
  /** Known remote modalities: name -> ["AET", "host", port] or {AET, Host, Port, AllowEcho, AllowFind, ...}. */
  DicomModalities: Record<string, unknown>;
  /** Any calling AE title may C-ECHO / C-STORE / C-FIND / C-GET / C-MOVE (Orthanc's defaults: echo and store only). */
  DicomAlwaysAllowEcho: boolean;
  DicomAlwaysAllowStore: boolean;
  DicomAlwaysAllowFind: boolean;
  DicomAlwaysAllowGet: boolean;
  DicomAlwaysAllowMove: boolean;
  /** A modality is recognized only from the host declared for it. */
  DicomCheckModalityHost: boolean;
  /** Compare AE titles case-sensitively. */
  StrictAetComparison: boolean;
  /** C-MOVE SCP answers after its sub-operations (true) or at once, sending in the background (false). */
  SynchronousCMove: boolean;
  /** Seconds a DIMSE response from a remote modality is awaited (0 = no timeout). */
  DicomScuTimeout: number;
  /** Jobs running at the same time (0 = one per logical CPU core). */
  ConcurrentJobs: number;
  /** Finished jobs kept in the jobs history (`/jobs`). */
  JobsHistorySize: number;
  /** Save the jobs in the index, so that unfinished jobs resume after a restart. */
  SaveJobs: boolean;
  /** The Orthanc release whose REST API is implemented, as reported by `/system`. */
  OrthancApiVersion: string;
  /** DICOM over TLS: the DICOM server accepts only TLS connections (needs DicomTlsCertificate and DicomTlsPrivateKey). */
  DicomTlsEnabled: boolean;
  /** PEM file of our certificate (absolute once loaded; relative paths resolve like StorageDirectory). */
  DicomTlsCertificate?: string;
  /** PEM file of the private key of DicomTlsCertificate (unencrypted). */
  DicomTlsPrivateKey?: string;
  /** PEM bundle of the CAs the peers' certificates must chain to. */
  DicomTlsTrustedCertificates?: string;
  /** Client certificates are required and verified (SCP); the remote SCP's certificate is verified (SCU). */
  DicomTlsRemoteCertificateRequired: boolean;
  /** Orthanc's 0..5: 0 = default (TLS 1.2+), 1 = SSL 3+ (TLS 1.0+ here), 2 = TLS 1.0+, 3 = TLS 1.1+, 4 = TLS 1.2+, 5 = TLS 1.3. */
  DicomTlsMinimumProtocolVersion: number;
}

export const DEFAULT_CONFIG: Readonly<Config> = Object.freeze({
  Name: 'pacsnode',
  HttpPort: 8042,
  DicomPort: 4242,
  DicomAet: 'ORTHANC',
  StorageDirectory: 'OrthancStorage',
  IndexDirectory: 'OrthancStorage',
  StorageCompression: false,
  MaximumStorageSize: 0,
  MaximumPatientCount: 0,
  MaximumStorageMode: 'Recycle',
  OverwriteInstances: false,
  StableAge: 60,
  UserMetadata: {},
  UserContentType: {},
  ExtraMainDicomTags: { Patient: [], Study: [], Series: [], Instance: [] },
  DefaultEncoding: 'Latin1',
  CheckRevisions: false,
  RemoteAccessAllowed: false,
  AuthenticationEnabled: false,
  RegisteredUsers: {},
  SyncStorageArea: true,
  SyncIndex: false,
  StorageAccessOnFind: 'Always',
  LimitFindResults: 0,
  LimitFindInstances: 0,
  MaximumHttpBodySize: 0,
  OrthancApiVersion: '1.12.6',
  DicomServerEnabled: true,
  DicomCheckCalledAet: false,
  DicomScpTimeout: 30,
  MaximumPduLength: 16384,
  UnknownSopClassAccepted: false,
  DicomModalities: {},
  DicomAlwaysAllowEcho: true,
  DicomAlwaysAllowStore: true,
  DicomAlwaysAllowFind: false,
  DicomAlwaysAllowGet: false,
  DicomAlwaysAllowMove: false,
  DicomCheckModalityHost: false,
  StrictAetComparison: false,
  SynchronousCMove: true,
  DicomScuTimeout: 10,
  ConcurrentJobs: 2,
  JobsHistorySize: 10,
  SaveJobs: true,
  DicomTlsEnabled: false,
  DicomTlsRemoteCertificateRequired: true,
  DicomTlsMinimumProtocolVersion: 0,
} satisfies Config);

/** Supported keys without a default: absent from `DEFAULT_CONFIG`, and from the loaded `Config` unless given. */
export const OPTIONAL_KEYS = ['HttpBindAddress', 'DicomTlsCertificate', 'DicomTlsPrivateKey', 'DicomTlsTrustedCertificates'] as const;

/** Keys this version reads. Anything else in a configuration file is reported. */
export const SUPPORTED_KEYS: ReadonlySet<string> = new Set([...Object.keys(DEFAULT_CONFIG), ...OPTIONAL_KEYS]);
