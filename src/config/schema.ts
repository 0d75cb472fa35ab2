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

/**
 * Orthanc's DICOMweb plugin section (`DicomWeb`), as written in the file: every field is optional and
 * `src/dicomweb/options.ts` applies the plugin's defaults. `RelativeUris` is a pacsnode addition.
 */
export interface DicomWebSection {
  Enable?: boolean;
  Root?: string;
  EnableWado?: boolean;
  WadoRoot?: string;
  Ssl?: boolean;
  QidoCaseSensitive?: boolean;
  Host?: string;
  PublicRoot?: string;
  StudiesMetadata?: 'Full' | 'MainDicomTags' | 'Extrapolate';
  SeriesMetadata?: 'Full' | 'MainDicomTags' | 'Extrapolate';
  StudiesMetadataExtrapolatedTags?: string[];
  SeriesMetadataExtrapolatedTags?: string[];
  EnableMetadataCache?: boolean;
  /** pacsnode: write BulkDataURI and RetrieveURL without scheme and host (`/dicom-web/studies/...`). */
  RelativeUris?: boolean;
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
  /** Orthanc 1.10's storage cache, in MB: the files most recently read kept in memory; 0 disables it. */
  MaximumStorageCacheSize: number;
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
  /** HTTPS on HttpPort (the REST API then answers TLS only); needs SslCertificate. */
  SslEnabled: boolean;
  /**
   * Orthanc's format: ONE PEM file holding the server's certificate (then any intermediate CA) AND its unencrypted
   * private key. With SslEnabled and no value, `certificate.pem` next to the configuration file, as Orthanc.
   */
  SslCertificate?: string;
  /** Oldest TLS version accepted by HTTPS, civetweb's scale: 0..2 = TLS 1.0+ (no SSL in Node), 3 = TLS 1.1+, 4 = TLS 1.2+, 5 = TLS 1.3. */
  SslMinimumProtocolVersion: number;
  /** OpenSSL cipher names accepted by HTTPS (Orthanc's list, joined with ':'); absent = Node's default list. */
  SslCiphersAccepted?: string[];
  /** HTTPS requires a client certificate that chains to SslTrustedClientCertificates. */
  SslVerifyPeers: boolean;
  /** PEM bundle of the CAs (or self-signed client certificates) trusted for SslVerifyPeers; default `trustedCertificates.pem`. */
  SslTrustedClientCertificates?: string;
  /** HTTP persistent connections (false: every answer closes its connection). */
  KeepAlive: boolean;
  /** Seconds an idle persistent HTTP connection stays open (0: closed after each answer). */
  KeepAliveTimeout: number;
  /** gzip (or deflate) of textual answers (JSON, text, XML) when the client accepts it. */
  HttpCompressionEnabled: boolean;
  /** Error answers carry Orthanc's error JSON; false: the status code alone, with an empty body. */
  HttpDescribeErrors: boolean;
  /** TCP_NODELAY (Nagle's algorithm off) on the HTTP connections. */
  TcpNoDelay: boolean;
  /** Seconds an HTTP connection may stall while a request is read or an answer written (0 = no limit). */
  HttpRequestTimeout: number;
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
  /** Transfer syntaxes the C-STORE SCP accepts: UIDs or wildcards (`1.2.840.10008.1.*`); absent: the legacy booleans below. */
  AcceptedTransferSyntaxes?: string[];
  /** Orthanc's legacy (pre-1.9) switches per family of transfer syntaxes, read when AcceptedTransferSyntaxes is absent. */
  DeflatedTransferSyntaxAccepted: boolean;
  JpegTransferSyntaxAccepted: boolean;
  Jpeg2000TransferSyntaxAccepted: boolean;
  JpegLosslessTransferSyntaxAccepted: boolean;
  JpipTransferSyntaxAccepted: boolean;
  Mpeg2TransferSyntaxAccepted: boolean;
  Mpeg4TransferSyntaxAccepted: boolean;
  H265TransferSyntaxAccepted: boolean;
  RleTransferSyntaxAccepted: boolean;
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
  /** Keep DicomModalities in the index (changes through `/modalities` survive a restart); the file's are then ignored. */
  DicomModalitiesInDatabase: boolean;
  /** How `/queries/{id}/retrieve` retrieves when neither the call nor the modality says: `C-MOVE` or `C-GET`. */
  DicomDefaultRetrieveMethod: 'C-MOVE' | 'C-GET';
  /** Seconds an SCU association to a modality stays open for further C-STOREs (Orthanc's default 5). */
  DicomAssociationCloseDelay: number;
  /** `POST /modalities/{id}/echo` also checks C-FIND (a study-level query) unless the call says otherwise. */
  DicomEchoChecksFind: boolean;
  /** Record every resource sent to a modality or a peer in `/exports`. */
  LogExportedResources: boolean;
  /** Queries (`/queries`) kept in memory; the least recently used is forgotten beyond this. */
  QueryRetrieveSize: number;
  /**
   * Known Orthanc peers (`/peers`): name -> ["url"], ["url", "username", "password"] or {Url, Username, Password,
   * HttpHeaders, CertificateFile, CertificateKeyFile, CertificateKeyPassword, Pkcs11, Timeout}.
   */
  OrthancPeers: Record<string, unknown>;
  /** Keep the peers in the index (changes through `/peers` survive a restart); OrthancPeers is then ignored. */
  OrthancPeersInDatabase: boolean;
  /** Seconds without progress after which an HTTP request to a peer fails (0 = no timeout). */
  HttpTimeout: number;
  /** The certificate of an https:// peer must be valid and trusted. */
  HttpsVerifyPeers: boolean;
  /** PEM bundle of the CAs trusted for https:// peers ('' = Node's bundled root CAs). */
  HttpsCACertificates: string;
  /** Proxy of the HTTP requests to peers, `http://[user:password@]host:port` ('' = none). */
  HttpProxy: string;
  /** Jobs running at the same time (0 = one per logical CPU core). */
  ConcurrentJobs: number;
  /** Finished jobs kept in the jobs history (`/jobs`). */
  JobsHistorySize: number;
  /** Archives of asynchronous archive/media jobs kept for download (the least recently used goes first). */
  MediaArchiveSize: number;
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
  /** Orthanc's DICOMweb plugin section (QIDO-RS, WADO-RS, STOW-RS, WADO-URI); see docs/dicomweb.md. */
  DicomWeb: DicomWebSection;
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
  MaximumStorageCacheSize: 128,
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
  SslEnabled: false,
  SslMinimumProtocolVersion: 4,
  SslVerifyPeers: false,
  KeepAlive: true,
  // Orthanc's is 1 s; 5 s so that Node.js clients reuse connections (docs/configuration.md).
  KeepAliveTimeout: 5,
  HttpCompressionEnabled: false,
  HttpDescribeErrors: true,
  TcpNoDelay: true,
  HttpRequestTimeout: 30,
  OrthancApiVersion: '1.12.6',
  DicomServerEnabled: true,
  DicomCheckCalledAet: false,
  DicomScpTimeout: 30,
  MaximumPduLength: 16384,
  UnknownSopClassAccepted: false,
  DeflatedTransferSyntaxAccepted: true,
  JpegTransferSyntaxAccepted: true,
  Jpeg2000TransferSyntaxAccepted: true,
  JpegLosslessTransferSyntaxAccepted: true,
  JpipTransferSyntaxAccepted: true,
  Mpeg2TransferSyntaxAccepted: true,
  Mpeg4TransferSyntaxAccepted: true,
  H265TransferSyntaxAccepted: true,
  RleTransferSyntaxAccepted: true,
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
  DicomModalitiesInDatabase: false,
  DicomDefaultRetrieveMethod: 'C-MOVE',
  DicomAssociationCloseDelay: 5,
  DicomEchoChecksFind: false,
  LogExportedResources: false,
  QueryRetrieveSize: 100,
  OrthancPeers: {},
  OrthancPeersInDatabase: false,
  HttpTimeout: 60,
  HttpsVerifyPeers: true,
  HttpsCACertificates: '',
  HttpProxy: '',
  ConcurrentJobs: 2,
  JobsHistorySize: 10,
  MediaArchiveSize: 1,
  SaveJobs: true,
  DicomTlsEnabled: false,
  DicomTlsRemoteCertificateRequired: true,
  DicomTlsMinimumProtocolVersion: 0,
  DicomWeb: {},
} satisfies Config);

/** Supported keys without a default: absent from `DEFAULT_CONFIG`, and from the loaded `Config` unless given. */
export const OPTIONAL_KEYS = [
  'HttpBindAddress', 'DicomTlsCertificate', 'DicomTlsPrivateKey', 'DicomTlsTrustedCertificates',
  'SslCertificate', 'SslCiphersAccepted', 'SslTrustedClientCertificates',
  'AcceptedTransferSyntaxes',
] as const;

/** Keys this version reads. Anything else in a configuration file is reported. */
export const SUPPORTED_KEYS: ReadonlySet<string> = new Set([...Object.keys(DEFAULT_CONFIG), ...OPTIONAL_KEYS]);
