/**
 * HTTPS for the REST API with Orthanc's keys (its HTTP server is civetweb): `SslEnabled`, `SslCertificate` (ONE PEM
 * file with the certificate and its private key), `SslMinimumProtocolVersion` (civetweb's `ssl_protocol_version`),
 * `SslCiphersAccepted` (OpenSSL cipher names), `SslVerifyPeers` and `SslTrustedClientCertificates` (client
 * certificates). `loadHttps` reads and checks the files once, at start-up: every problem is a `ConfigError` naming
 * the key and the file. The answer is the `https` options of the HTTP server (node:https / node:tls).
 */
import { createSecureContext, type SecureVersion, type TlsOptions } from 'node:tls';
import { ConfigError } from '../core/errors.js';
import {
  certificateBlocks,
  minimumTlsVersion,
  parseCertificates,
  parsePrivateKey,
  privateKeyBlock,
  readPemFile,
  validityWarning,
  withLegacySecurityLevel,
} from '../core/tls-files.js';

/** The configuration keys read here (Orthanc's names); `Config` has them all. */
export interface HttpsConfig {
  SslEnabled: boolean;
  SslCertificate?: string;
  SslMinimumProtocolVersion: number;
  SslCiphersAccepted?: readonly string[];
  SslVerifyPeers: boolean;
  SslTrustedClientCertificates?: string;
}

export interface Https {
  /** The options of `https.createServer`. */
  options: TlsOptions;
  /** Findings that do not stop the server (a certificate out of its validity period, a cipher OpenSSL does not know). */
  warnings: string[];
  /** One line for the start-up log. */
  description: string;
}

/**
 * civetweb's `ssl_protocol_version`, which Orthanc's `SslMinimumProtocolVersion` is: 0 = SSL 2 and above,
 * 1 = SSL 3, 2 = TLS 1.0, 3 = TLS 1.1, 4 = TLS 1.2 (Orthanc's default), 5 = TLS 1.3 only. It is the
 * `DicomTlsMinimumProtocolVersion` scale but for 0 (there the default profile, TLS 1.2+); Node's OpenSSL has no SSL,
 * so 0 and 1 are TLS 1.0 and above.
 */
export function httpsMinimumVersion(value: number): SecureVersion {
  if (value === 0) return 'TLSv1';
  try {
    return minimumTlsVersion(value);
  } catch {
    throw new RangeError(`SslMinimumProtocolVersion ${value} is not 0..5`);
  }
}

/** OpenSSL's cipher-list operators and keywords (`!aNULL`, `@STRENGTH`, `-RSA`, `+SHA`) are passed as they are. */
const CIPHER_OPERATOR = /^[!+\-@]/;

/**
 * Orthanc joins `SslCiphersAccepted` with ':' into civetweb's `ssl_cipher_list` (OpenSSL's `SSL_CTX_set_cipher_list`,
 * TLS 1.2 and below; TLS 1.3 keeps OpenSSL's suites unless `TLS_*` names are listed, which Node also accepts here).
 * Each name OpenSSL does not know is left out with a warning (OpenSSL itself would silently skip it); none known is an
 * error. Absent: Node's default list (Orthanc's default is a FIPS 140-2 list that includes CBC suites without forward
 * secrecy; Node's is stricter and what modern clients negotiate anyway).
 */
function cipherList(list: readonly string[] | undefined, legacy: boolean, warnings: string[]): string | undefined {
  if (list === undefined) return legacy ? withLegacySecurityLevel() : undefined;
  const known: string[] = [];
  const unknown: string[] = [];
  for (const name of list) {
    if (CIPHER_OPERATOR.test(name)) {
      known.push(name);
      continue;
    }
    try {
      createSecureContext({ ciphers: legacy ? withLegacySecurityLevel(name) : name });
      known.push(name);
    } catch {
      unknown.push(name);
    }
  }
  const openssl = `OpenSSL ${process.versions.openssl}`;
  if (known.every((name) => CIPHER_OPERATOR.test(name))) {
    throw new ConfigError(
      `SslCiphersAccepted: none of ${list.map((c) => JSON.stringify(c)).join(', ')} is a cipher ${openssl} knows ` +
        "(names as in 'openssl ciphers -v', e.g. \"ECDHE-RSA-AES128-GCM-SHA256\")",
    );
  }
  for (const name of unknown) warnings.push(`SslCiphersAccepted: "${name}" is not a cipher ${openssl} knows; ignored`);
  const ciphers = known.join(':');
  return legacy ? withLegacySecurityLevel(ciphers) : ciphers;
}

/**
 * Reads and checks the HTTPS files of the configuration: `SslCertificate` must hold at least one certificate and the
 * unencrypted private key of the first one (Orthanc's single-file format); with `SslVerifyPeers`,
 * `SslTrustedClientCertificates` must hold at least one certificate. Throws a `ConfigError` naming the key and the
 * file. Call it only with `SslEnabled`.
 */
export function loadHttps(config: HttpsConfig): Https {
  const certFile = config.SslCertificate;
  if (!certFile) throw new ConfigError('SslCertificate must be set when SslEnabled is true (one PEM file with the certificate and its private key)');
  const warnings: string[] = [];
  let minVersion: SecureVersion;
  try {
    minVersion = httpsMinimumVersion(config.SslMinimumProtocolVersion);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const legacy = config.SslMinimumProtocolVersion <= 3;

  const pem = readPemFile('SslCertificate', certFile);
  const certificates = parseCertificates('SslCertificate', certFile, pem);
  const keyPem = privateKeyBlock(pem);
  if (keyPem === undefined) {
    throw new ConfigError(
      `SslCertificate: ${certFile} holds no private key ("-----BEGIN PRIVATE KEY-----"): as in Orthanc, this one PEM file ` +
        'holds the certificate AND its private key (cat server.crt server.key > certificate.pem)',
    );
  }
  const key = parsePrivateKey('SslCertificate', certFile, keyPem);
  if (!certificates[0]!.checkPrivateKey(key)) {
    const other = certificates.findIndex((c) => c.checkPrivateKey(key));
    throw new ConfigError(
      `SslCertificate: the private key in ${certFile} is not the key of its first certificate (${certificates[0]!.subject.replace(/\n/g, ', ')})` +
        (other > 0 ? `; it is the key of certificate ${other + 1}: put the server's certificate first, then its CA chain` : ''),
    );
  }
  const expired = validityWarning('SslCertificate', certFile, certificates[0]!);
  if (expired) warnings.push(expired);

  const options: TlsOptions = { cert: certificateBlocks(pem).join('\n'), key: keyPem, minVersion };
  const ciphers = cipherList(config.SslCiphersAccepted, legacy, warnings);
  if (ciphers !== undefined) options.ciphers = ciphers;

  const files = [certFile];
  if (config.SslVerifyPeers) {
    const trustedFile = config.SslTrustedClientCertificates;
    if (!trustedFile) {
      throw new ConfigError('SslTrustedClientCertificates must be set when SslVerifyPeers is true (the PEM bundle client certificates must chain to)');
    }
    const trusted = readPemFile('SslTrustedClientCertificates', trustedFile);
    parseCertificates('SslTrustedClientCertificates', trustedFile, trusted);
    // civetweb's ssl_verify_peer: a certificate is requested, and a client without a valid one is refused.
    Object.assign(options, { ca: trusted, requestCert: true, rejectUnauthorized: true });
    files.push(trustedFile);
  }
  try {
    createSecureContext(options); // what OpenSSL itself refuses (e.g. a key too weak for its security level)
  } catch (e) {
    throw new ConfigError(`HTTPS: OpenSSL refuses the configuration (${files.join(', ')}): ${(e as Error).message}`);
  }
  const description =
    `HTTPS (${minVersion} and above${config.SslCiphersAccepted ? `, ${config.SslCiphersAccepted.length} cipher names` : ''}` +
    `${config.SslVerifyPeers ? ', client certificates required' : ''})`;
  return { options, warnings, description };
}
