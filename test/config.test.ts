import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { buildConfig, describeConfig, loadConfig, ORTHANC_UNSUPPORTED_KEYS, parseJsonWithComments } from '../src/config/load.js';
import { DEFAULT_CONFIG, SUPPORTED_KEYS, type Config } from '../src/config/schema.js';
import { ConfigError } from '../src/core/errors.js';
import { getLogLevel, setLogLevel, type LogLevel } from '../src/core/log.js';

/** Runs `fn`, expects a ConfigError, returns its message. */
function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).to.be.instanceOf(ConfigError);
    expect((e as ConfigError).code).to.equal('ERR_CONFIG');
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError, but nothing was thrown');
}

describe('config', () => {
  let tmp: string;
  let savedLevel: string;

  before(() => {
    // Warnings are expected here; keep the test output readable.
    savedLevel = getLogLevel();
    setLogLevel('error');
  });
  after(() => setLogLevel(savedLevel as LogLevel));

  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pacsnode-config-'));
  });
  afterEach(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  function write(name: string, text: string): string {
    const file = path.join(tmp, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
    return file;
  }

  describe('parseJsonWithComments', () => {
    it('accepts // line comments and /* */ block comments outside strings', () => {
      const text = [
        '// Orthanc-style header',
        '{',
        '  "Name" : "MyOrthanc", // trailing line comment',
        '  /* a block',
        '     over lines */ "HttpPort" : /* inline */ 8042,',
        '  "List" : [ 1, /* two */ 2 ] // end',
        '}',
        '/* after */',
      ].join('\n');
      expect(parseJsonWithComments(text, 'a.json')).to.deep.equal({ Name: 'MyOrthanc', HttpPort: 8042, List: [1, 2] });
    });

    it('does not treat // or /* inside a string as a comment', () => {
      const value = parseJsonWithComments(
        '{ "Url": "http://host//path", "Glob": "/* not a comment */", "Quote": "a\\"//b" }',
        'a.json',
      );
      expect(value).to.deep.equal({ Url: 'http://host//path', Glob: '/* not a comment */', Quote: 'a"//b' });
    });

    it('decodes the JSON escapes and keeps numbers, booleans and null', () => {
      const value = parseJsonWithComments('{"s":"a\\u00e9\\n\\/\\\\","n":-1.5e2,"t":true,"f":false,"z":null}', 'a.json');
      expect(value).to.deep.equal({ s: 'aé\n/\\', n: -150, t: true, f: false, z: null });
    });

    it('reports a missing comma at the line:column of the unexpected token', () => {
      const text = '{\n  "Name": "x"\n  "HttpPort": 8042\n}';
      const message = configError(() => parseJsonWithComments(text, '/etc/orthanc/orthanc.json'));
      expect(message).to.match(/^\/etc\/orthanc\/orthanc\.json:3:3: /);
      expect(message).to.include("expected ',' or '}'");
    });

    it('counts lines of CRLF files and columns after comments correctly', () => {
      const text = '{\r\n  // comment\r\n  "a": 1,\r\n  /* x */ "b": tru\r\n}';
      const message = configError(() => parseJsonWithComments(text, 'crlf.json'));
      expect(message).to.match(/^crlf\.json:4:16: /);
      expect(message).to.include("'tru'");
    });

    it('rejects a trailing comma in an object, pointing at the comma', () => {
      const message = configError(() => parseJsonWithComments('{\n  "a": 1,\n  "b": 2,\n}', 'tc.json'));
      expect(message).to.match(/^tc\.json:3:9: trailing comma/);
    });

    it('rejects a trailing comma in an array', () => {
      const message = configError(() => parseJsonWithComments('{ "a": [1, 2, ] }', 'tc.json'));
      expect(message).to.match(/^tc\.json:1:13: trailing comma/);
    });

    it('reports the other usual mistakes with their position', () => {
      const cases: Array<[string, RegExp]> = [
        ['', /:1:1: expected a JSON value but found end of file/],
        ['{ "a": 1', /:1:9: .*the object opened at 1:1 is not closed/],
        ['{ "a": "abc', /:1:8: unterminated string/],
        ['{ "a": "c:\\data" }', /:1:11: invalid escape sequence '\\d'/],
        ["{ 'a': 1 }", /:1:3: expected a member name/],
        ['{ "a": 01 }', /:1:8: expected a number but found '01'/],
        ['{ "a": 1 } extra', /:1:12: expected end of file/],
        ['{ "a": 1 /* open', /:1:10: unterminated block comment/],
        ['{ "a": "line\nbreak" }', /:1:13: .*control characters must be escaped/],
        ['{ "a": ${X} }', /:1:8: expected a JSON value but found '\$'/],
      ];
      for (const [text, pattern] of cases) {
        expect(configError(() => parseJsonWithComments(text, 'm.json')), JSON.stringify(text)).to.match(pattern);
      }
    });

    it('keeps a member named __proto__ as an ordinary property', () => {
      const value = parseJsonWithComments('{ "__proto__": { "polluted": true } }', 'p.json') as Record<string, unknown>;
      expect(Object.keys(value)).to.deep.equal(['__proto__']);
      expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    });
  });

  describe('loadConfig: files', () => {
    it('gives the embedded defaults without a path', () => {
      const { config, files, warnings } = loadConfig();
      expect(files).to.deep.equal([]);
      expect(warnings).to.deep.equal([]);
      expect(config.DicomAet).to.equal('ORTHANC');
      expect(config.HttpPort).to.equal(8042);
      expect(config.StorageDirectory).to.equal(path.resolve(process.cwd(), 'OrthancStorage'));
      expect(config.IndexDirectory).to.equal(config.StorageDirectory);
    });

    it('reads an Orthanc file with comments and validates every value', () => {
      const file = write(
        'orthanc.json',
        `{
          // The logical name of this instance of Orthanc.
          "Name" : "Test",
          "HttpPort" : 8043, "DicomPort" : 0, "DicomAet" : "MY_AET",
          "StorageDirectory" : "${tmp}/db",
          "StorageCompression" : true, "MaximumStorageSize" : 100, "MaximumStorageCacheSize" : 16, "MaximumPatientCount" : 5,
          "MaximumStorageMode" : "Reject", "OverwriteInstances" : true, "StableAge" : 5,
          "UserMetadata" : { "Sample" : 1024 },
          "UserContentType" : { "pdf" : [ 1025, "application/pdf" ], "raw" : 1026 },
          "ExtraMainDicomTags" : { "Series" : [ "ProtocolName", "0018,1030" ] },
          "DefaultEncoding" : "utf8", "CheckRevisions" : true,
          "RemoteAccessAllowed" : true, "AuthenticationEnabled" : true,
          "RegisteredUsers" : { "alice" : "s3cret" },
          "SyncStorageArea" : false, "SyncIndex" : true, "StorageAccessOnFind" : "Never",
          "LimitFindResults" : 100, "LimitFindInstances" : 200,
          "HttpBindAddress" : "127.0.0.1", "MaximumHttpBodySize" : 50, "OrthancApiVersion" : "1.12.5",
          "SslEnabled" : true, "SslCertificate" : "tls/https.pem", "SslMinimumProtocolVersion" : 5,
          "SslCiphersAccepted" : [ "ECDHE-RSA-AES128-GCM-SHA256" ], "SslVerifyPeers" : true,
          "SslTrustedClientCertificates" : "${tmp}/clients.pem", "KeepAlive" : false, "KeepAliveTimeout" : 3,
          "HttpCompressionEnabled" : true, "HttpDescribeErrors" : false, "TcpNoDelay" : false,
          "HttpRequestTimeout" : 0,
          "DicomServerEnabled" : false, "DicomCheckCalledAet" : true, "DicomScpTimeout" : 10,
          "MaximumPduLength" : 32768, "UnknownSopClassAccepted" : true,
          "DicomModalities" : { "ct" : [ "CT1", "10.0.0.1", 104 ], "mr" : { "AET" : "MR1", "Host" : "mr.local", "Port" : 11112, "AllowFind" : false } },
          "DicomAlwaysAllowEcho" : false, "DicomAlwaysAllowStore" : false, "DicomAlwaysAllowFind" : true,
          "DicomAlwaysAllowGet" : true, "DicomAlwaysAllowMove" : true, "DicomCheckModalityHost" : true,
          "StrictAetComparison" : true, "SynchronousCMove" : false, "DicomScuTimeout" : 5,
          "DicomModalitiesInDatabase" : true, "DicomDefaultRetrieveMethod" : "C-GET", "DicomAssociationCloseDelay" : 0,
          "DicomEchoChecksFind" : true, "LogExportedResources" : true, "QueryRetrieveSize" : 7,
          "OrthancPeers" : { "p" : [ "http://peer:8042" ], "q" : { "Url" : "https://q.local/o/", "HttpHeaders" : { "X-Token" : "t" } } },
          "OrthancPeersInDatabase" : true, "HttpTimeout" : 5, "HttpsVerifyPeers" : false,
          "HttpsCACertificates" : "ca-bundle.pem", "HttpProxy" : "proxy.local:3128",
          "ConcurrentJobs" : 4, "JobsHistorySize" : 0, "MediaArchiveSize" : 3, "SaveJobs" : false,
          "DicomTlsEnabled" : true, "DicomTlsCertificate" : "tls/server.pem", "DicomTlsPrivateKey" : "tls/server.key",
          "DicomTlsTrustedCertificates" : "${tmp}/ca.pem", "DicomTlsRemoteCertificateRequired" : false,
          "DicomTlsMinimumProtocolVersion" : 4
        }`,
      );
      const { config, files, warnings } = loadConfig(file);
      expect(files).to.deep.equal([file]);
      expect(warnings).to.deep.equal([]);
      expect(config).to.deep.equal({
        Name: 'Test',
        HttpPort: 8043,
        DicomPort: 0,
        DicomAet: 'MY_AET',
        StorageDirectory: path.join(tmp, 'db'),
        IndexDirectory: path.join(tmp, 'db'),
        StorageCompression: true,
        MaximumStorageSize: 100,
        MaximumStorageCacheSize: 16,
        MaximumPatientCount: 5,
        MaximumStorageMode: 'Reject',
        OverwriteInstances: true,
        StableAge: 5,
        UserMetadata: { Sample: 1024 },
        UserContentType: { pdf: [1025, 'application/pdf'], raw: 1026 },
        ExtraMainDicomTags: { Patient: [], Study: [], Series: ['ProtocolName', '0018,1030'], Instance: [] },
        DefaultEncoding: 'Utf8',
        CheckRevisions: true,
        RemoteAccessAllowed: true,
        AuthenticationEnabled: true,
        RegisteredUsers: { alice: 's3cret' },
        SyncStorageArea: false,
        SyncIndex: true,
        StorageAccessOnFind: 'Never',
        LimitFindResults: 100,
        LimitFindInstances: 200,
        HttpBindAddress: '127.0.0.1',
        MaximumHttpBodySize: 50,
        SslEnabled: true,
        SslCertificate: path.join(tmp, 'tls', 'https.pem'),
        SslMinimumProtocolVersion: 5,
        SslCiphersAccepted: ['ECDHE-RSA-AES128-GCM-SHA256'],
        SslVerifyPeers: true,
        SslTrustedClientCertificates: path.join(tmp, 'clients.pem'),
        KeepAlive: false,
        KeepAliveTimeout: 3,
        HttpCompressionEnabled: true,
        HttpDescribeErrors: false,
        TcpNoDelay: false,
        HttpRequestTimeout: 0,
        DicomServerEnabled: false,
        DicomCheckCalledAet: true,
        DicomScpTimeout: 10,
        MaximumPduLength: 32768,
        UnknownSopClassAccepted: true,
        DeflatedTransferSyntaxAccepted: true,
        JpegTransferSyntaxAccepted: true,
        Jpeg2000TransferSyntaxAccepted: true,
        JpegLosslessTransferSyntaxAccepted: true,
        JpipTransferSyntaxAccepted: true,
        Mpeg2TransferSyntaxAccepted: true,
        Mpeg4TransferSyntaxAccepted: true,
        H265TransferSyntaxAccepted: true,
        RleTransferSyntaxAccepted: true,
        DicomModalities: { ct: ['CT1', '10.0.0.1', 104], mr: { AET: 'MR1', Host: 'mr.local', Port: 11112, AllowFind: false } },
        DicomAlwaysAllowEcho: false,
        DicomAlwaysAllowStore: false,
        DicomAlwaysAllowFind: true,
        DicomAlwaysAllowGet: true,
        DicomAlwaysAllowMove: true,
        DicomCheckModalityHost: true,
        StrictAetComparison: true,
        SynchronousCMove: false,
        DicomScuTimeout: 5,
        DicomModalitiesInDatabase: true,
        DicomDefaultRetrieveMethod: 'C-GET',
        DicomAssociationCloseDelay: 0,
        DicomEchoChecksFind: true,
        LogExportedResources: true,
        QueryRetrieveSize: 7,
        OrthancPeers: { p: ['http://peer:8042'], q: { Url: 'https://q.local/o/', HttpHeaders: { 'X-Token': 't' } } },
        OrthancPeersInDatabase: true,
        HttpTimeout: 5,
        HttpsVerifyPeers: false,
        HttpsCACertificates: path.join(tmp, 'ca-bundle.pem'),
        HttpProxy: 'proxy.local:3128',
        ConcurrentJobs: 4,
        JobsHistorySize: 0,
        MediaArchiveSize: 3,
        SaveJobs: false,
        OrthancApiVersion: '1.12.5',
        DicomTlsEnabled: true,
        DicomTlsCertificate: path.join(tmp, 'tls', 'server.pem'),
        DicomTlsPrivateKey: path.join(tmp, 'tls', 'server.key'),
        DicomTlsTrustedCertificates: path.join(tmp, 'ca.pem'),
        DicomTlsRemoteCertificateRequired: false,
        DicomTlsMinimumProtocolVersion: 4,
        DicomWeb: {},
      } satisfies Config);
    });

    it('names the file and line:column of a malformed file', () => {
      const file = write('bad.json', '{\n  "HttpPort": 8042,\n  "DicomAet": ORTHANC\n}\n');
      expect(configError(() => loadConfig(file))).to.equal(
        `${file}:3:15: expected a JSON value (true, false, null, a number, a string, an object or an array) but found 'ORTHANC'`,
      );
    });

    it('rejects a trailing comma in a file', () => {
      const file = write('tc.json', '{\n  "HttpPort": 8042,\n}\n');
      expect(configError(() => loadConfig(file))).to.match(new RegExp(`^${escape(file)}:2:19: trailing comma`));
    });

    it('requires a top-level object', () => {
      const file = write('array.json', '[ { "HttpPort": 8042 } ]');
      expect(configError(() => loadConfig(file))).to.equal(`${file}: the configuration must be a JSON object ({ ... }), found an array`);
    });

    it('fails clearly on a missing path', () => {
      const missing = path.join(tmp, 'nope.json');
      expect(configError(() => loadConfig(missing))).to.equal(`configuration file or directory not found: ${missing}`);
    });

    it('warns about a key defined twice in one file and keeps the last value', () => {
      const file = write('dup.json', '{\n  "HttpPort": 1,\n  "HttpPort": 2\n}');
      const { config, warnings } = loadConfig(file);
      expect(config.HttpPort).to.equal(2);
      expect(warnings).to.deep.equal([`${file}:3:3: "HttpPort" is defined twice in the same object; the last value is used`]);
    });
  });

  describe('validation', () => {
    const bad: Array<[keyof Config, unknown, string]> = [
      ['HttpPort', '8042', 'HttpPort must be an integer 0..65535 (0 = any free port), found "8042" (a string)'],
      ['HttpPort', 65536, 'HttpPort must be an integer 0..65535'],
      ['HttpPort', -1, 'HttpPort must be an integer 0..65535'],
      ['HttpPort', 80.5, 'HttpPort must be an integer 0..65535'],
      ['DicomPort', null, 'DicomPort must be an integer 0..65535 (0 = any free port), found null'],
      ['DicomAet', 'ABCDEFGHIJKLMNOPQ', 'DicomAet must be 1..16 characters of the DICOM default repertoire'],
      ['DicomAet', '', 'DicomAet must be 1..16 characters'],
      ['DicomAet', '    ', 'DicomAet must be 1..16 characters'],
      ['DicomAet', 'A\\B', 'DicomAet must be 1..16 characters'],
      ['DicomAet', 'ÉCHO', 'DicomAet must be 1..16 characters'],
      ['DicomAet', 42, 'DicomAet must be 1..16 characters'],
      ['Name', 1, 'Name must be a string, found 1'],
      ['StorageDirectory', '', 'StorageDirectory must be a non-empty string'],
      ['IndexDirectory', false, 'IndexDirectory must be a non-empty string'],
      ['StorageCompression', 'true', 'StorageCompression must be a boolean (true or false), found "true" (a string)'],
      ['OverwriteInstances', 1, 'OverwriteInstances must be a boolean'],
      ['CheckRevisions', null, 'CheckRevisions must be a boolean'],
      ['RemoteAccessAllowed', 'yes', 'RemoteAccessAllowed must be a boolean'],
      ['AuthenticationEnabled', 0, 'AuthenticationEnabled must be a boolean'],
      ['SyncStorageArea', [], 'SyncStorageArea must be a boolean (true or false), found an array'],
      ['SyncIndex', 'yes', 'SyncIndex must be a boolean (true or false), found "yes" (a string)'],
      ['SslEnabled', 'true', 'SslEnabled must be a boolean'],
      ['SslCertificate', '', 'SslCertificate must be a non-empty string (a file path)'],
      ['SslMinimumProtocolVersion', 6, 'SslMinimumProtocolVersion must be an integer 0..5 (4 = TLS 1.2 and above), found 6'],
      ['SslCiphersAccepted', 'AES128-GCM-SHA256', 'SslCiphersAccepted must be a non-empty array of cipher names'],
      ['SslCiphersAccepted', [], 'SslCiphersAccepted must be a non-empty array of cipher names'],
      ['SslVerifyPeers', 1, 'SslVerifyPeers must be a boolean'],
      ['SslTrustedClientCertificates', 5, 'SslTrustedClientCertificates must be a non-empty string (a file path)'],
      ['KeepAlive', 'yes', 'KeepAlive must be a boolean'],
      ['KeepAliveTimeout', -1, 'KeepAliveTimeout must be a non-negative integer, found -1'],
      ['HttpCompressionEnabled', 1, 'HttpCompressionEnabled must be a boolean'],
      ['HttpDescribeErrors', null, 'HttpDescribeErrors must be a boolean'],
      ['TcpNoDelay', 'no', 'TcpNoDelay must be a boolean'],
      ['HttpRequestTimeout', 1.5, 'HttpRequestTimeout must be a non-negative integer, found 1.5'],
      ['DicomServerEnabled', 1, 'DicomServerEnabled must be a boolean'],
      ['DicomCheckCalledAet', 'no', 'DicomCheckCalledAet must be a boolean'],
      ['DicomScpTimeout', -1, 'DicomScpTimeout must be'],
      ['MaximumPduLength', 100, 'MaximumPduLength must be an integer 4096..131072'],
      ['UnknownSopClassAccepted', null, 'UnknownSopClassAccepted must be a boolean'],
      ['DeflatedTransferSyntaxAccepted', 'yes', 'DeflatedTransferSyntaxAccepted must be a boolean'],
      ['JpegTransferSyntaxAccepted', 'yes', 'JpegTransferSyntaxAccepted must be a boolean'],
      ['Jpeg2000TransferSyntaxAccepted', 'yes', 'Jpeg2000TransferSyntaxAccepted must be a boolean'],
      ['JpegLosslessTransferSyntaxAccepted', 'yes', 'JpegLosslessTransferSyntaxAccepted must be a boolean'],
      ['JpipTransferSyntaxAccepted', 'yes', 'JpipTransferSyntaxAccepted must be a boolean'],
      ['Mpeg2TransferSyntaxAccepted', 'yes', 'Mpeg2TransferSyntaxAccepted must be a boolean'],
      ['Mpeg4TransferSyntaxAccepted', 'yes', 'Mpeg4TransferSyntaxAccepted must be a boolean'],
      ['H265TransferSyntaxAccepted', 'yes', 'H265TransferSyntaxAccepted must be a boolean'],
      ['RleTransferSyntaxAccepted', 'yes', 'RleTransferSyntaxAccepted must be a boolean'],
      ['AcceptedTransferSyntaxes', ['1.2.840.10008.1.2', 'JPEG'], 'AcceptedTransferSyntaxes must be a transfer syntax UID or a list'],
      ['DicomModalities', { bad: ['AET'] }, 'DicomModalities.bad must be ["AET", "host", port] or an object'],
      ['DicomAlwaysAllowEcho', 1, 'DicomAlwaysAllowEcho must be a boolean'],
      ['DicomAlwaysAllowStore', 1, 'DicomAlwaysAllowStore must be a boolean'],
      ['DicomAlwaysAllowFind', 1, 'DicomAlwaysAllowFind must be a boolean'],
      ['DicomAlwaysAllowGet', 1, 'DicomAlwaysAllowGet must be a boolean'],
      ['DicomAlwaysAllowMove', 1, 'DicomAlwaysAllowMove must be a boolean'],
      ['DicomCheckModalityHost', 1, 'DicomCheckModalityHost must be a boolean'],
      ['StrictAetComparison', 1, 'StrictAetComparison must be a boolean'],
      ['SynchronousCMove', 'yes', 'SynchronousCMove must be a boolean'],
      ['DicomScuTimeout', -5, 'DicomScuTimeout must be'],
      ['DicomModalities', { 'a.b': ['A', 'h', 104] }, 'Only alphanumeric, dash characters and underscores are allowed in the names of modalities/peers, but found: "a.b"'],
      ['DicomModalities', { x: ['X', 'h', 104, 'Bogus'] }, 'DicomModalities.x: unknown modality manufacturer "Bogus"'],
      ['DicomModalities', { x: { AET: 'X', Host: 'h', Port: 104, RetrieveMethod: 'C-FIND' } }, 'DicomModalities.x.RetrieveMethod must be "C-MOVE", "C-GET" or "SystemDefault"'],
      ['DicomModalities', { x: { AET: 'X', Host: 'h', Port: 104, Timeout: -1 } }, 'DicomModalities.x: Timeout must be a non-negative integer'],
      ['DicomModalities', { x: { AET: 'X', Host: 'h', Port: 104, LocalAet: 'ABCDEFGHIJKLMNOPQ' } }, 'DicomModalities.x: LocalAet must be 1..16 characters'],
      ['DicomModalitiesInDatabase', 'true', 'DicomModalitiesInDatabase must be a boolean'],
      ['DicomDefaultRetrieveMethod', 'C-FIND', 'DicomDefaultRetrieveMethod must be one of "C-MOVE", "C-GET", found "C-FIND"'],
      ['DicomAssociationCloseDelay', -1, 'DicomAssociationCloseDelay must be a non-negative integer'],
      ['DicomEchoChecksFind', 1, 'DicomEchoChecksFind must be a boolean'],
      ['LogExportedResources', 'yes', 'LogExportedResources must be a boolean'],
      ['QueryRetrieveSize', 0, 'QueryRetrieveSize must be a positive integer, found 0'],
      ['OrthancPeers', [], 'OrthancPeers must be an object of peers'],
      ['OrthancPeers', { 'a b': ['http://h/'] }, 'Only alphanumeric, dash characters and underscores are allowed in the names of modalities/peers, but found: a b'],
      ['OrthancPeers', { p: ['http://h/', 'user'] }, 'OrthancPeers.p: the HTTP password is not provided'],
      ['OrthancPeers', { p: ['ftp://h/'] }, 'OrthancPeers.p: bad URL (only http:// and https:// are allowed): ftp://h/'],
      ['OrthancPeers', { p: { Url: 'http://h/', HttpHeaders: { 'Bad Name': 'x' } } }, 'OrthancPeers.p.HttpHeaders: bad header name "Bad Name"'],
      ['OrthancPeers', { p: { Url: 'http://h/', Timeout: -1 } }, 'OrthancPeers.p.Timeout must be a non-negative integer (seconds)'],
      ['OrthancPeers', { p: { Username: 'u' } }, 'OrthancPeers.p: empty URL'],
      ['OrthancPeersInDatabase', 'true', 'OrthancPeersInDatabase must be a boolean'],
      ['HttpTimeout', -1, 'HttpTimeout must be an integer 0..2147483 (seconds; 0 = no timeout), found -1'],
      ['DicomScuTimeout', 3000000, 'DicomScuTimeout must be an integer 0..2147483'],
      ['HttpsVerifyPeers', 'no', 'HttpsVerifyPeers must be a boolean'],
      ['HttpsCACertificates', 5, 'HttpsCACertificates must be a string (a file path, or "" for none), found 5'],
      ['HttpProxy', 'socks5://proxy:1080', 'HttpProxy must be "" or a proxy URL such as "http://proxy.local:3128", found "socks5://proxy:1080" (a string)'],
      ['ConcurrentJobs', -1, 'ConcurrentJobs must be a non-negative integer, found -1'],
      ['JobsHistorySize', '10', 'JobsHistorySize must be a non-negative integer'],
      ['MediaArchiveSize', 0, 'MediaArchiveSize must be a positive integer, found 0'],
      ['SaveJobs', 'true', 'SaveJobs must be a boolean (true or false), found "true" (a string)'],
      ['MaximumStorageSize', -1, 'MaximumStorageSize must be a non-negative integer, found -1'],
      ['MaximumStorageCacheSize', 1.5, 'MaximumStorageCacheSize must be a non-negative integer, found 1.5'],
      ['MaximumPatientCount', 2.5, 'MaximumPatientCount must be a non-negative integer'],
      ['StableAge', '60', 'StableAge must be a non-negative integer'],
      ['LimitFindResults', -5, 'LimitFindResults must be a non-negative integer'],
      ['LimitFindInstances', true, 'LimitFindInstances must be a non-negative integer'],
      ['MaximumHttpBodySize', -1, 'MaximumHttpBodySize must be a non-negative integer'],
      ['MaximumStorageMode', 'Delete', 'MaximumStorageMode must be one of "Recycle", "Reject", found "Delete" (a string)'],
      ['StorageAccessOnFind', 'always', 'StorageAccessOnFind must be one of "Always", "Answers", "Never"'],
      ['DefaultEncoding', 'Klingon', 'DefaultEncoding must be one of Ascii, Utf8, Latin1'],
      ['UserMetadata', [], 'UserMetadata must be an object of name -> integer 1024..65535, found an array'],
      ['UserMetadata', { Sample: 1023 }, 'UserMetadata.Sample must be an integer 1024..65535, found 1023'],
      ['UserMetadata', { Sample: 65536 }, 'UserMetadata.Sample must be an integer 1024..65535'],
      ['UserMetadata', { Sample: '1024' }, 'UserMetadata.Sample must be an integer 1024..65535'],
      ['UserMetadata', { A: 2000, B: 2000 }, 'UserMetadata gives the same number 2000 to "A" and "B"'],
      ['UserContentType', 5, 'UserContentType must be an object of name -> integer 1024..65535 or [integer, "mime/type"]'],
      ['UserContentType', { pdf: 100 }, 'UserContentType.pdf must be an integer 1024..65535 or [integer 1024..65535, "mime/type"], found 100'],
      ['UserContentType', { pdf: [1025] }, 'UserContentType.pdf must be an integer 1024..65535 or [integer'],
      ['UserContentType', { pdf: [1025, 'pdf'] }, 'UserContentType.pdf must be a MIME type such as "application/pdf"'],
      ['UserContentType', { pdf: ['1025', 'application/pdf'] }, 'UserContentType.pdf must be an integer 1024..65535'],
      ['ExtraMainDicomTags', ['PatientSex'], 'ExtraMainDicomTags must be an object with optional "Patient", "Study", "Series" and "Instance" arrays'],
      ['ExtraMainDicomTags', { Frame: [] }, '"Frame" is not a level'],
      ['ExtraMainDicomTags', { Study: 'StudyID' }, 'ExtraMainDicomTags.Study must be an array of strings'],
      ['ExtraMainDicomTags', { Study: ['StudyID', 7] }, 'ExtraMainDicomTags.Study[1] must be an array of non-empty strings, found 7'],
      ['RegisteredUsers', ['alice'], 'RegisteredUsers must be an object of user name -> password (strings), found an array'],
      ['RegisteredUsers', { alice: 1234 }, 'RegisteredUsers."alice" must be a string (the password)'],
      ['HttpBindAddress', '', 'HttpBindAddress must be a non-empty string'],
      ['OrthancApiVersion', 1.12, 'OrthancApiVersion must be a non-empty string'],
      ['DicomTlsEnabled', 'true', 'DicomTlsEnabled must be a boolean (true or false), found "true" (a string)'],
      ['DicomTlsCertificate', '', 'DicomTlsCertificate must be a non-empty string (a file path), found "" (a string)'],
      ['DicomTlsPrivateKey', 42, 'DicomTlsPrivateKey must be a non-empty string (a file path), found 42'],
      ['DicomTlsTrustedCertificates', ['ca.pem'], 'DicomTlsTrustedCertificates must be a non-empty string (a file path), found an array'],
      ['DicomTlsRemoteCertificateRequired', 0, 'DicomTlsRemoteCertificateRequired must be a boolean'],
      ['DicomTlsMinimumProtocolVersion', 6, 'DicomTlsMinimumProtocolVersion must be an integer 0..5 (0 = default: TLS 1.2 or 1.3), found 6'],
      ['DicomTlsMinimumProtocolVersion', '4', 'DicomTlsMinimumProtocolVersion must be an integer 0..5'],
      ['DicomWeb', [], 'DicomWeb must be an object'],
      ['DicomWeb', { SeriesMetadata: 'Fast' }, 'DicomWeb.SeriesMetadata must be'],
      ['DicomWeb', { Root: '/' }, 'DicomWeb.Root must be a URI path other than "/"'],
    ];

    for (const [key, value, expected] of bad) {
      it(`rejects ${key} = ${JSON.stringify(value)}`, () => {
        const message = configError(() => buildConfig({ [key]: value }, 'test.json'));
        expect(message.startsWith('test.json: '), message).to.equal(true);
        expect(message).to.include(expected);
      });
    }

    it('covers every supported key with a rejection case', () => {
      const tested = new Set(bad.map(([key]) => key as string));
      expect([...SUPPORTED_KEYS].filter((k) => !tested.has(k))).to.deep.equal([]);
    });

    it('reports the file a bad value comes from, with the key and expected type', () => {
      const file = write('orthanc.json', '{ "DicomAet": "ORTHANC", "StableAge": "soon" }');
      expect(configError(() => loadConfig(file))).to.equal(
        `${file}: StableAge must be a non-negative integer, found "soon" (a string)`,
      );
    });

    it('accepts the boundary values', () => {
      const { config } = buildConfig(
        {
          HttpPort: 0,
          DicomPort: 65535,
          DicomAet: 'ABCDEFGHIJKLMNOP',
          UserMetadata: { Low: 1024, High: 65535 },
          UserContentType: { Doc: [65535, 'application/vnd.ms-word; charset=binary'] },
          StableAge: 0,
        },
        'test',
      );
      expect(config.HttpPort).to.equal(0);
      expect(config.DicomPort).to.equal(65535);
      expect(config.DicomAet).to.equal('ABCDEFGHIJKLMNOP');
      expect(config.UserMetadata).to.deep.equal({ Low: 1024, High: 65535 });
      expect(config.StableAge).to.equal(0);
    });

    it('never puts a password in an error message', () => {
      const message = configError(() => buildConfig({ RegisteredUsers: { alice: 'topsecret', bob: 12345678 } }, 'test'));
      expect(message).to.include('"bob"');
      expect(message).not.to.include('12345678');
      expect(message).not.to.include('topsecret');
    });
  });

  describe('unknown keys', () => {
    it('warns about an Orthanc option pacsnode does not support yet, and ignores it', () => {
      const file = write('orthanc.json', '{ "MetricsEnabled": false, "HttpPort": 8050 }');
      const { config, warnings } = loadConfig(file);
      expect(warnings).to.deep.equal([`${file}: "MetricsEnabled" is an Orthanc option that pacsnode does not support yet; ignored`]);
      expect(config.HttpPort).to.equal(8050);
      expect(config).not.to.have.property('MetricsEnabled');
    });

    it('warns about plugin sections and other well-known Orthanc keys the same way', () => {
      const { warnings } = buildConfig(
        { Worklists: { Enable: true }, Plugins: ['/usr/share/orthanc/plugins'], LuaScripts: [], WebDavEnabled: false },
        'src',
      );
      expect(warnings).to.have.length(4);
      for (const w of warnings) expect(w).to.match(/^src: "\w+" is an Orthanc option that pacsnode does not support yet; ignored$/);
    });

    it('never reports a key pacsnode reads as "not supported yet"', () => {
      expect([...ORTHANC_UNSUPPORTED_KEYS].filter((k) => SUPPORTED_KEYS.has(k))).to.deep.equal([]);
      const { config, warnings } = buildConfig({ DicomAlwaysAllowStore: false, SslEnabled: false, KeepAlive: true, HttpRequestTimeout: 5 }, 'src');
      expect(warnings).to.deep.equal([]);
      expect(config).to.include({ DicomAlwaysAllowStore: false, SslEnabled: false, KeepAlive: true, HttpRequestTimeout: 5 });
    });

    it('warns about unknown keys (including lowercase ones) distinctly', () => {
      const { config, warnings } = buildConfig({ HttpPrt: 8042, comment: 'hello', _README: 'x' }, 'src');
      expect(warnings).to.deep.equal([
        'src: unknown configuration key "HttpPrt"; ignored',
        'src: unknown configuration key "comment"; ignored',
        'src: unknown configuration key "_README"; ignored',
      ]);
      expect(config.HttpPort).to.equal(DEFAULT_CONFIG.HttpPort);
    });
  });

  describe('configuration directory', () => {
    it('merges every *.json file in alphabetical order and ignores other entries', () => {
      const dir = path.join(tmp, 'conf');
      const b = write('conf/20-dicom.JSON', '{ "DicomAet": "MERGED", "DicomPort": 11112 }');
      const a = write('conf/10-http.json', '// first\n{ "HttpPort": 8055 }');
      write('conf/README.txt', 'not json at all');
      write('conf/sub.json/inner.json', '{ "Name": "nested files are not read" }');
      const { config, files } = loadConfig(dir);
      expect(files).to.deep.equal([a, b]);
      expect(config.HttpPort).to.equal(8055);
      expect(config.DicomAet).to.equal('MERGED');
      expect(config.DicomPort).to.equal(11112);
      expect(config.Name).to.equal(DEFAULT_CONFIG.Name);
    });

    it('rejects a key defined in two files, naming both', () => {
      const dir = path.join(tmp, 'conf');
      const a = write('conf/a.json', '{ "HttpPort": 1 }');
      const b = write('conf/b.json', '{ "Name": "x", "HttpPort": 2 }');
      expect(configError(() => loadConfig(dir))).to.equal(
        `The configuration section "HttpPort" is defined in 2 different configuration files: ${a} and ${b}`,
      );
    });

    it('names the right file when one file of the directory is malformed', () => {
      const dir = path.join(tmp, 'conf');
      write('conf/a.json', '{ "HttpPort": 1 }');
      const b = write('conf/b.json', '{\n  "Name": "x",\n}');
      expect(configError(() => loadConfig(dir))).to.match(new RegExp(`^${escape(b)}:2:14: trailing comma`));
    });

    it('uses the defaults, with a warning, for a directory without *.json files', () => {
      const dir = path.join(tmp, 'empty');
      fs.mkdirSync(dir);
      const { config, files, warnings } = loadConfig(dir);
      expect(files).to.deep.equal([]);
      expect(warnings).to.have.length(1);
      expect(warnings[0]).to.include('no *.json file');
      expect(config.HttpPort).to.equal(DEFAULT_CONFIG.HttpPort);
    });
  });

  describe('environment substitution', () => {
    const names = ['PACSNODE_T_NAME', 'PACSNODE_T_PORT', 'PACSNODE_T_USER', 'PACSNODE_T_UNSET', 'PACSNODE_T_EMPTY'];
    beforeEach(() => {
      process.env.PACSNODE_T_NAME = 'FromEnv';
      process.env.PACSNODE_T_PORT = '9042';
      process.env.PACSNODE_T_USER = 'admin';
      process.env.PACSNODE_T_EMPTY = '';
      delete process.env.PACSNODE_T_UNSET;
    });
    afterEach(() => {
      for (const n of names) delete process.env[n];
    });

    it('substitutes ${VAR} and ${VAR:-default} inside strings, member names included', () => {
      const file = write(
        'env.json',
        `{
          "Name": "\${PACSNODE_T_NAME}-\${PACSNODE_T_UNSET:-fallback}",
          "DicomAet": "\${PACSNODE_T_EMPTY:-EMPTY_AET}",
          "RegisteredUsers": { "\${PACSNODE_T_USER}": "\${PACSNODE_T_UNSET:-change-me}" }
        }`,
      );
      const { config, warnings } = loadConfig(file);
      expect(config.Name).to.equal('FromEnv-fallback');
      expect(config.DicomAet).to.equal('EMPTY_AET');
      expect(config.RegisteredUsers).to.deep.equal({ admin: 'change-me' });
      expect(warnings).to.deep.equal([]);
    });

    it('replaces an unset variable without default by an empty string, with a warning', () => {
      const file = write('env.json', '{ "Name": "a${PACSNODE_T_UNSET}b" }');
      const { config, warnings } = loadConfig(file);
      expect(config.Name).to.equal('ab');
      expect(warnings).to.have.length(1);
      expect(warnings[0]).to.include('PACSNODE_T_UNSET is not set');
    });

    it('reads a bare ${VAR} in place of a value as JSON, so numbers can come from the environment', () => {
      const file = write('env.json', '{ "HttpPort": ${PACSNODE_T_PORT}, "DicomPort": ${PACSNODE_T_UNSET:-4343} }');
      const { config } = loadConfig(file);
      expect(config.HttpPort).to.equal(9042);
      expect(config.DicomPort).to.equal(4343);
    });

    it('reports a bare ${VAR} that does not give a JSON value at its position', () => {
      const file = write('env.json', '{\n  "HttpPort": ${PACSNODE_T_NAME}\n}');
      expect(configError(() => loadConfig(file))).to.equal(
        `${file}:2:15: \${PACSNODE_T_NAME} was replaced by "FromEnv", which is not a JSON value`,
      );
    });

    it('does not substitute inside strings when parsing without an environment', () => {
      expect(parseJsonWithComments('{ "a": "${PACSNODE_T_NAME}" }', 'x.json')).to.deep.equal({ a: '${PACSNODE_T_NAME}' });
    });

    it('validates the substituted value like any other', () => {
      const file = write('env.json', '{ "HttpPort": "${PACSNODE_T_PORT}" }');
      expect(configError(() => loadConfig(file))).to.include('HttpPort must be an integer 0..65535');
    });
  });

  describe('directories', () => {
    it('defaults IndexDirectory to StorageDirectory', () => {
      const file = write('orthanc.json', `{ "StorageDirectory": "${tmp}/storage" }`);
      const { config } = loadConfig(file);
      expect(config.StorageDirectory).to.equal(path.join(tmp, 'storage'));
      expect(config.IndexDirectory).to.equal(path.join(tmp, 'storage'));
    });

    it('keeps an explicit IndexDirectory', () => {
      const file = write('orthanc.json', `{ "StorageDirectory": "${tmp}/storage", "IndexDirectory": "${tmp}/index" }`);
      const { config } = loadConfig(file);
      expect(config.StorageDirectory).to.equal(path.join(tmp, 'storage'));
      expect(config.IndexDirectory).to.equal(path.join(tmp, 'index'));
    });

    it('resolves relative folders of a file against the folder of that file, as Orthanc does', () => {
      const file = write('etc/orthanc.json', '{ "StorageDirectory": "db", "IndexDirectory": "../index" }');
      const { config } = loadConfig(file);
      expect(config.StorageDirectory).to.equal(path.join(tmp, 'etc', 'db'));
      expect(config.IndexDirectory).to.equal(path.join(tmp, 'index'));
    });

    it('resolves relative folders of a configuration directory against that directory', () => {
      const dir = path.join(tmp, 'conf.d');
      write('conf.d/storage.json', '{ "StorageDirectory": "./db" }');
      const { config } = loadConfig(dir);
      expect(config.StorageDirectory).to.equal(path.join(dir, 'db'));
      expect(config.IndexDirectory).to.equal(path.join(dir, 'db'));
    });

    it('resolves the default OrthancStorage against the folder of the file', () => {
      const file = write('etc/orthanc.json', '{ "Name": "x" }');
      expect(loadConfig(file).config.StorageDirectory).to.equal(path.join(tmp, 'etc', 'OrthancStorage'));
    });

    it('resolves relative folders of buildConfig and of overrides against the current directory', () => {
      expect(buildConfig({ StorageDirectory: 'rel/db' }, 'mem').config.StorageDirectory).to.equal(
        path.resolve(process.cwd(), 'rel/db'),
      );
      const file = write('etc/orthanc.json', '{ "StorageDirectory": "db" }');
      const { config } = loadConfig(file, { IndexDirectory: 'idx' });
      expect(config.StorageDirectory).to.equal(path.join(tmp, 'etc', 'db'));
      expect(config.IndexDirectory).to.equal(path.resolve(process.cwd(), 'idx'));
    });
  });

  describe('DICOM TLS keys', () => {
    const files = { DicomTlsCertificate: 'server.pem', DicomTlsPrivateKey: 'server.key', DicomTlsTrustedCertificates: 'ca.pem' };

    it('default to TLS off, client certificates required, default protocol floor, no files', () => {
      const { config } = buildConfig({}, 'test');
      expect(config.DicomTlsEnabled).to.equal(false);
      expect(config.DicomTlsRemoteCertificateRequired).to.equal(true);
      expect(config.DicomTlsMinimumProtocolVersion).to.equal(0);
      expect(config).not.to.have.property('DicomTlsCertificate');
      expect(config).not.to.have.property('DicomTlsPrivateKey');
      expect(config).not.to.have.property('DicomTlsTrustedCertificates');
    });

    it('refuse DicomTlsEnabled without a certificate or a key, naming the missing key', () => {
      expect(configError(() => buildConfig({ DicomTlsEnabled: true, DicomTlsPrivateKey: 'k.pem' }, 'test.json'))).to.equal(
        "test.json: DicomTlsEnabled is true but DicomTlsCertificate is not set (the PEM file of the server's certificate)",
      );
      expect(configError(() => buildConfig({ DicomTlsEnabled: true, DicomTlsCertificate: 'c.pem' }, 'test.json'))).to.equal(
        "test.json: DicomTlsEnabled is true but DicomTlsPrivateKey is not set (the PEM file of the server's private key)",
      );
    });

    it('refuse required client certificates without trusted certificates, and accept them when not required', () => {
      const withoutCa = { DicomTlsEnabled: true, DicomTlsCertificate: 'c.pem', DicomTlsPrivateKey: 'k.pem' };
      expect(configError(() => buildConfig(withoutCa, 'test.json'))).to.equal(
        'test.json: DicomTlsRemoteCertificateRequired is true but DicomTlsTrustedCertificates is not set ' +
          '(the PEM bundle of the CAs client certificates must chain to)',
      );
      const { config } = buildConfig({ ...withoutCa, DicomTlsRemoteCertificateRequired: false }, 'test.json');
      expect(config.DicomTlsEnabled).to.equal(true);
      expect(config.DicomTlsTrustedCertificates).to.equal(undefined);
    });

    it('refuse a certificate without its key (or the reverse) even with TLS off: the SCU uses them too', () => {
      expect(configError(() => buildConfig({ DicomTlsCertificate: 'c.pem' }, 'test.json'))).to.equal(
        'test.json: DicomTlsCertificate is set but DicomTlsPrivateKey is not (the PEM file of its key)',
      );
      expect(configError(() => buildConfig({ DicomTlsPrivateKey: 'k.pem' }, 'test.json'))).to.include('DicomTlsCertificate is not');
    });

    it('name the file the offending key comes from, in a configuration directory', () => {
      const dir = path.join(tmp, 'conf');
      write('conf/10-files.json', JSON.stringify({ DicomTlsCertificate: 'c.pem', DicomTlsPrivateKey: 'k.pem' }));
      const tls = write('conf/20-tls.json', '{ "DicomTlsEnabled": true }');
      expect(configError(() => loadConfig(dir))).to.equal(
        `${tls}: DicomTlsRemoteCertificateRequired is true but DicomTlsTrustedCertificates is not set ` +
          '(the PEM bundle of the CAs client certificates must chain to)',
      );
    });

    it('resolve relative files like StorageDirectory: against the folder of the file, overrides against the current directory', () => {
      const file = write('etc/orthanc.json', JSON.stringify({ DicomTlsEnabled: true, ...files, DicomTlsTrustedCertificates: '../pki/ca.pem' }));
      const { config } = loadConfig(file);
      expect(config.DicomTlsCertificate).to.equal(path.join(tmp, 'etc', 'server.pem'));
      expect(config.DicomTlsPrivateKey).to.equal(path.join(tmp, 'etc', 'server.key'));
      expect(config.DicomTlsTrustedCertificates).to.equal(path.join(tmp, 'pki', 'ca.pem'));
      const overridden = loadConfig(file, { DicomTlsTrustedCertificates: 'bundle.pem' }).config;
      expect(overridden.DicomTlsTrustedCertificates).to.equal(path.resolve(process.cwd(), 'bundle.pem'));
      expect(buildConfig({ ...files }, 'mem').config.DicomTlsCertificate).to.equal(path.resolve(process.cwd(), 'server.pem'));
    });

    it('are summarised by describeConfig', () => {
      const { config } = buildConfig({ DicomTlsEnabled: true, ...files }, 'mem');
      expect(describeConfig(config)).to.include('TLS only (client certificates required)');
      expect(describeConfig(buildConfig({}, 'mem').config)).not.to.include('TLS');
    });
  });

  describe('HTTPS and HTTP server keys', () => {
    it("default as in Orthanc 1.12 (but a 5 s keep-alive): HTTPS off (TLS 1.2 floor), no compression, described errors", () => {
      const { config } = buildConfig({}, 'test');
      expect(config).to.include({
        SslEnabled: false, SslMinimumProtocolVersion: 4, SslVerifyPeers: false, KeepAlive: true, KeepAliveTimeout: 5,
        HttpCompressionEnabled: false, HttpDescribeErrors: true, TcpNoDelay: true, HttpRequestTimeout: 30,
      });
      for (const key of ['SslCertificate', 'SslCiphersAccepted', 'SslTrustedClientCertificates']) expect(config).not.to.have.property(key);
    });

    it("use Orthanc's default files next to the configuration: certificate.pem, and trustedCertificates.pem with SslVerifyPeers", () => {
      const file = write('etc/orthanc.json', JSON.stringify({ SslEnabled: true, SslVerifyPeers: true }));
      const { config, warnings } = loadConfig(file);
      expect(config.SslCertificate).to.equal(path.join(tmp, 'etc', 'certificate.pem'));
      expect(config.SslTrustedClientCertificates).to.equal(path.join(tmp, 'etc', 'trustedCertificates.pem'));
      expect(warnings).to.deep.equal([]);
      const given = loadConfig(write('etc/given.json', JSON.stringify({ SslEnabled: true, SslCertificate: '../pki/https.pem' }))).config;
      expect(given.SslCertificate).to.equal(path.join(tmp, 'pki', 'https.pem'));
      expect(given).not.to.have.property('SslTrustedClientCertificates');
    });

    it('warn that SslVerifyPeers without SslEnabled does nothing, and are summarised by describeConfig', () => {
      const { config, warnings } = buildConfig({ SslVerifyPeers: true }, 'test');
      expect(warnings.join('\n')).to.contain('SslVerifyPeers is true but SslEnabled is false');
      expect(config).not.to.have.property('SslTrustedClientCertificates');
      expect(describeConfig(buildConfig({ SslEnabled: true, SslVerifyPeers: true }, 'mem').config)).to.include('HTTPS only (client certificates required)');
    });
  });

  describe('overrides', () => {
    it('are applied last and beat the file', () => {
      const file = write('orthanc.json', '{ "HttpPort": 8042, "DicomAet": "FROMFILE" }');
      const { config } = loadConfig(file, { HttpPort: 0, RegisteredUsers: { u: 'p' } });
      expect(config.HttpPort).to.equal(0);
      expect(config.DicomAet).to.equal('FROMFILE');
      expect(config.RegisteredUsers).to.deep.equal({ u: 'p' });
    });

    it('move IndexDirectory along with an overridden StorageDirectory unless it is set', () => {
      const file = write('orthanc.json', '{ "Name": "x" }');
      const storage = path.join(tmp, 'ov');
      expect(loadConfig(file, { StorageDirectory: storage }).config.IndexDirectory).to.equal(storage);
      const withIndex = write('indexed.json', `{ "IndexDirectory": "${tmp}/idx" }`);
      expect(loadConfig(withIndex, { StorageDirectory: storage }).config.IndexDirectory).to.equal(path.join(tmp, 'idx'));
    });

    it('are validated too, and undefined entries are ignored', () => {
      expect(configError(() => loadConfig(undefined, { HttpPort: 70000 }))).to.equal(
        'overrides: HttpPort must be an integer 0..65535 (0 = any free port), found 70000',
      );
      const { config } = buildConfig({ HttpPort: 1234 }, 'mem', { HttpPort: undefined, DicomPort: 0 });
      expect(config.HttpPort).to.equal(1234);
      expect(config.DicomPort).to.equal(0);
    });
  });

  describe('result', () => {
    it('is deeply frozen', () => {
      const { config } = buildConfig({ UserMetadata: { A: 1024 }, ExtraMainDicomTags: { Study: ['StudyID'] } }, 'mem');
      expect(Object.isFrozen(config)).to.equal(true);
      expect(Object.isFrozen(config.UserMetadata)).to.equal(true);
      expect(Object.isFrozen(config.ExtraMainDicomTags)).to.equal(true);
      expect(Object.isFrozen(config.ExtraMainDicomTags.Study)).to.equal(true);
      expect(() => {
        (config as Config).HttpPort = 1;
      }).to.throw(TypeError);
      expect(() => config.ExtraMainDicomTags.Study.push('X')).to.throw(TypeError);
    });

    it('shares nothing with DEFAULT_CONFIG or with the input', () => {
      const raw = { RegisteredUsers: { a: 'b' } };
      const { config } = buildConfig(raw, 'mem');
      raw.RegisteredUsers.a = 'changed';
      expect(config.RegisteredUsers.a).to.equal('b');
      expect(Object.isFrozen(raw.RegisteredUsers)).to.equal(false);
      expect(config.ExtraMainDicomTags).not.to.equal(DEFAULT_CONFIG.ExtraMainDicomTags);
      expect(Object.isFrozen(DEFAULT_CONFIG.ExtraMainDicomTags.Patient)).to.equal(false);
    });

    it('is summarised by describeConfig without passwords', () => {
      const { config } = buildConfig(
        {
          Name: 'Main',
          DicomAet: 'MAIN_AE',
          StorageDirectory: path.join(tmp, 'db'),
          RemoteAccessAllowed: true,
          AuthenticationEnabled: true,
          RegisteredUsers: { alice: 'pw-alice-1', bob: 'pw-bob-2' },
        },
        'mem',
      );
      const text = describeConfig(config);
      expect(text.split('\n').length).to.be.greaterThan(3);
      expect(text).to.include('MAIN_AE');
      expect(text).to.include('port 4242');
      expect(text).to.include(path.join(tmp, 'db'));
      expect(text).to.include('2 registered users');
      expect(text).not.to.include('pw-alice-1');
      expect(text).not.to.include('pw-bob-2');
    });
  });
});

describe('docs/configuration.md', () => {
  const docs = fs.readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8');

  it('has one table row per supported key, with the default of DEFAULT_CONFIG', () => {
    const rows = new Map<string, string>();
    for (const m of docs.matchAll(/^\| `(\w+)` \| [^|]+ \| ([^|]+) \|/gm)) rows.set(m[1], m[2].trim());
    expect([...rows.keys()].sort()).to.deep.equal([...SUPPORTED_KEYS].sort());
    for (const [key, value] of Object.entries(DEFAULT_CONFIG)) {
      expect(rows.get(key), key).to.equal(`\`${JSON.stringify(value)}\``);
    }
  });

  it('gives an example file that loads', () => {
    const example = /```jsonc\n([\s\S]*?)```/.exec(docs)?.[1];
    expect(example).to.be.a('string');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pacsnode-config-doc-'));
    const saved = getLogLevel();
    try {
      setLogLevel('error');
      const file = path.join(dir, 'orthanc.json');
      fs.writeFileSync(file, example ?? '');
      const { config, warnings } = loadConfig(file);
      expect(config.UserContentType).to.deep.equal({ report: [1025, 'application/pdf'] });
      expect(config.StorageDirectory).to.equal(path.join(dir, 'OrthancStorage'));
      expect(warnings.some((w) => w.includes('"MetricsEnabled" is an Orthanc option'))).to.equal(true);
    } finally {
      setLogLevel(saved as LogLevel);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('config: HTTP security defaults as Orthanc 1.5.8+', function () {
  it('turns authentication on when remote access is allowed and AuthenticationEnabled is not set', () => {
    const { config } = buildConfig({ RemoteAccessAllowed: true, RegisteredUsers: { alice: 'x' } }, 'test');
    expect(config.AuthenticationEnabled).to.equal(true);
    expect(config.RegisteredUsers).to.deep.equal({ alice: 'x' });
  });

  it('adds the default orthanc/orthanc user, with a warning, when no user is registered', () => {
    const { config, warnings } = buildConfig({ RemoteAccessAllowed: true }, 'test');
    expect(config.AuthenticationEnabled).to.equal(true);
    expect(config.RegisteredUsers).to.deep.equal({ orthanc: 'orthanc' });
    expect(warnings.join(' ')).to.contain('default user');
  });

  it('keeps an explicit AuthenticationEnabled false, with a warning', () => {
    const { config, warnings } = buildConfig({ RemoteAccessAllowed: true, AuthenticationEnabled: false }, 'test');
    expect(config.AuthenticationEnabled).to.equal(false);
    expect(warnings.join(' ')).to.contain('authentication is disabled');
  });

  it('leaves authentication off for loopback-only servers', () => {
    const { config, warnings } = buildConfig({}, 'test');
    expect(config.AuthenticationEnabled).to.equal(false);
    expect(warnings).to.deep.equal([]);
  });
});
