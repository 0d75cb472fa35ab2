/**
 * DICOM over TLS (PS3.15 Annex B, the secure transport connection profiles), configured with Orthanc's keys:
 * `DicomTlsCertificate`, `DicomTlsPrivateKey`, `DicomTlsTrustedCertificates`, `DicomTlsRemoteCertificateRequired`
 * and `DicomTlsMinimumProtocolVersion` (docs/configuration.md, docs/dicom-network.md "TLS").
 *
 * - `loadDicomTls(config, role)` reads and checks the PEM files once, at start-up: every problem is a
 *   `ConfigError` naming the key and the file.
 * - `tlsServerOptions(tls)` gives the options of `tls.createServer` (`net/server.ts` uses it).
 * - `tlsTransport(host, port, tls)` is the requestor's {@link RequestorTransport} over `tls.connect`.
 *
 * As in Orthanc (which delegates to DCMTK), `DicomTlsRemoteCertificateRequired` governs both sides: the acceptor
 * requests and verifies client certificates, the requestor verifies the acceptor's certificate. Verification is
 * the certificate chain up to `DicomTlsTrustedCertificates`; the host name is not compared with the certificate
 * (DCMTK does not either: modalities are usually addressed by IP and their certificates rarely name it), unless
 * a requestor asks for it with `checkHostname`.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import {
  connect as tlsConnect,
  createSecureContext,
  DEFAULT_CIPHERS,
  type ConnectionOptions,
  type SecureContextOptions,
  type SecureVersion,
  type TlsOptions,
} from 'node:tls';
import { ConfigError } from '../core/errors.js';
import { logger } from '../core/log.js';
import type { RequestorTransport } from './association.js';

const log = logger('dicom');

/** The configuration keys read here (Orthanc's names); `Config` has them all. */
export interface DicomTlsConfig {
  DicomTlsCertificate?: string;
  DicomTlsPrivateKey?: string;
  DicomTlsTrustedCertificates?: string;
  DicomTlsRemoteCertificateRequired: boolean;
  DicomTlsMinimumProtocolVersion: number;
}

/** Loaded credentials and policy, for either role. */
export interface DicomTls {
  /** Our certificate, PEM (the leaf first, then any intermediate). Required for an acceptor. */
  certificate?: Buffer;
  /** Our private key, PEM, unencrypted. Required with `certificate`. */
  privateKey?: Buffer;
  /**
   * The CAs a peer's certificate must chain to, PEM bundle. Without it a requestor verifies against Node's
   * bundled root CAs.
   */
  trustedCertificates?: Buffer;
  /** Acceptor: request client certificates and refuse a client without a valid one. Requestor: verify the acceptor's. */
  remoteCertificateRequired: boolean;
  /** Orthanc's `DicomTlsMinimumProtocolVersion`, 0..5 (see {@link minimumTlsVersion}). */
  minimumProtocolVersion: number;
  /** Requestor only: also require the acceptor's certificate to name the host connected to (Node's default check). */
  checkHostname?: boolean;
}

/**
 * Orthanc's `DicomTlsMinimumProtocolVersion` values: 0 is the default profile (DCMTK's non-downgrading BCP 195
 * profile: TLS 1.2 or 1.3), 1 = SSL 3 and above, 2 = TLS 1.0, 3 = TLS 1.1, 4 = TLS 1.2, 5 = TLS 1.3 only. Node's
 * OpenSSL has no SSL 3, so 1 is TLS 1.0 and above.
 */
export function minimumTlsVersion(value: number): SecureVersion {
  const versions: SecureVersion[] = ['TLSv1.2', 'TLSv1', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];
  const version = versions[value];
  if (!Number.isInteger(value) || !version) throw new RangeError(`DicomTlsMinimumProtocolVersion ${value} is not 0..5`);
  return version;
}

/**
 * The options shared by both roles: credentials, trusted CAs and protocol versions. TLS 1.0 and 1.1 need OpenSSL's
 * security level 0 (OpenSSL 3 refuses them at its default level 1): values 1 to 3 lower it, on purpose.
 */
function commonOptions(tls: DicomTls): SecureContextOptions {
  const options: SecureContextOptions = { minVersion: minimumTlsVersion(tls.minimumProtocolVersion) };
  if (tls.certificate) options.cert = tls.certificate;
  if (tls.privateKey) options.key = tls.privateKey;
  if (tls.trustedCertificates) options.ca = tls.trustedCertificates;
  if (tls.minimumProtocolVersion >= 1 && tls.minimumProtocolVersion <= 3) options.ciphers = `${DEFAULT_CIPHERS}:@SECLEVEL=0`;
  return options;
}

/**
 * Options of `tls.createServer` for the DICOM acceptor: our certificate and key; with
 * `remoteCertificateRequired`, a client certificate is requested and must chain to `trustedCertificates`
 * (otherwise none is requested, as DCMTK's `--ignore-peer-cert`).
 */
export function tlsServerOptions(tls: DicomTls): TlsOptions {
  if (!tls.certificate || !tls.privateKey) throw new RangeError('a DICOM TLS acceptor needs a certificate and its private key');
  return { ...commonOptions(tls), requestCert: tls.remoteCertificateRequired, rejectUnauthorized: tls.remoteCertificateRequired };
}

/**
 * The requestor's TLS transport: `tls.connect` with our certificate (when we have one) and the trusted CAs; ready
 * on 'secureConnect', so the connect timeout covers the handshake. SNI is sent only for host names (RFC 6066
 * forbids IP addresses there).
 */
export function tlsTransport(host: string, port: number, tls: DicomTls): RequestorTransport {
  return {
    description: `${isIP(host) === 6 ? `[${host}]` : host}:${port} (TLS)`,
    open(ready) {
      const options: ConnectionOptions = {
        ...commonOptions(tls),
        host,
        port,
        rejectUnauthorized: tls.remoteCertificateRequired,
      };
      if (isIP(host) === 0) options.servername = host;
      // Chain verification stays on (rejectUnauthorized); only the host name comparison is skipped, as in DCMTK.
      if (!tls.checkHostname) options.checkServerIdentity = () => undefined;
      const socket = tlsConnect(options);
      socket.setNoDelay(true); // on the TCP socket under TLS, kept by libuv until it connects
      // Registered before the association's own listener: OpenSSL's reason, without its codes, file and line.
      socket.on('error', (error: Error & { reason?: string }) => {
        if (error.reason && /:error:[0-9A-F]+:SSL routines:/.test(error.message)) error.message = `TLS: ${error.reason}`;
      });
      socket.once('secureConnect', ready);
      return socket;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Loading and checking the files

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

function readPem(key: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new ConfigError(`${key}: cannot read ${file} (${(e as Error).message})`);
  }
}

/** Every certificate of a PEM file, parsed; at least one. */
function parseCertificates(key: string, file: string, pem: Buffer): X509Certificate[] {
  const blocks = pem.toString('latin1').match(CERTIFICATE_BLOCK) ?? [];
  if (blocks.length === 0) throw new ConfigError(`${key}: ${file} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (e) {
      throw new ConfigError(`${key}: certificate ${i + 1} of ${file} cannot be parsed (${(e as Error).message})`);
    }
  });
}

function parsePrivateKey(key: string, file: string, pem: Buffer): KeyObject {
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch (e) {
    const message = (e as Error).message;
    if (/passphrase|encrypted/i.test(message) || /ENCRYPTED/.test(pem.toString('latin1'))) {
      throw new ConfigError(`${key}: ${file} is encrypted; pacsnode needs an unencrypted key (openssl pkey -in ${file} -out plain.key)`);
    }
    throw new ConfigError(`${key}: ${file} is not a PEM private key (${message})`);
  }
}

/** Warns about a certificate outside its validity period: peers will refuse it. */
function checkValidity(key: string, file: string, certificate: X509Certificate): void {
  const now = Date.now();
  if (Date.parse(certificate.validTo) < now) {
    log.warn(`${key}: the certificate in ${file} (${certificate.subject.replace(/\n/g, ', ')}) expired on ${certificate.validTo}`);
  } else if (Date.parse(certificate.validFrom) > now) {
    log.warn(`${key}: the certificate in ${file} (${certificate.subject.replace(/\n/g, ', ')}) is not valid before ${certificate.validFrom}`);
  }
}

/**
 * Reads and checks the DICOM TLS files of the configuration: they must exist, parse (certificates, the key), and
 * the key must be the certificate's. An acceptor needs a certificate and a key, and the trusted certificates when
 * client certificates are required; a requestor may go without a certificate (both or neither). Throws a
 * `ConfigError` naming the key and the file.
 */
export function loadDicomTls(config: DicomTlsConfig, role: 'acceptor' | 'requestor'): DicomTls {
  const certFile = config.DicomTlsCertificate;
  const keyFile = config.DicomTlsPrivateKey;
  const trustedFile = config.DicomTlsTrustedCertificates;
  if (role === 'acceptor' && !certFile) {
    throw new ConfigError('DicomTlsCertificate must be set for the DICOM server to accept TLS (the PEM file of its certificate)');
  }
  if (certFile && !keyFile) throw new ConfigError('DicomTlsPrivateKey must be set with DicomTlsCertificate (the PEM file of its key)');
  if (keyFile && !certFile) throw new ConfigError('DicomTlsCertificate must be set with DicomTlsPrivateKey (the PEM file of the certificate)');
  if (role === 'acceptor' && config.DicomTlsRemoteCertificateRequired && !trustedFile) {
    throw new ConfigError(
      'DicomTlsTrustedCertificates must be set when DicomTlsRemoteCertificateRequired is true (the CAs client certificates must chain to)',
    );
  }
  const tls: DicomTls = {
    remoteCertificateRequired: config.DicomTlsRemoteCertificateRequired,
    minimumProtocolVersion: config.DicomTlsMinimumProtocolVersion,
  };
  minimumTlsVersion(tls.minimumProtocolVersion);
  if (certFile && keyFile) {
    const certificate = readPem('DicomTlsCertificate', certFile);
    const [leaf] = parseCertificates('DicomTlsCertificate', certFile, certificate);
    const privateKey = readPem('DicomTlsPrivateKey', keyFile);
    const keyObject = parsePrivateKey('DicomTlsPrivateKey', keyFile, privateKey);
    if (!leaf!.checkPrivateKey(keyObject)) {
      throw new ConfigError(`DicomTlsPrivateKey: ${keyFile} is not the private key of the certificate in ${certFile}`);
    }
    checkValidity('DicomTlsCertificate', certFile, leaf!);
    tls.certificate = certificate;
    tls.privateKey = privateKey;
  }
  if (trustedFile) {
    const trusted = readPem('DicomTlsTrustedCertificates', trustedFile);
    parseCertificates('DicomTlsTrustedCertificates', trustedFile, trusted);
    tls.trustedCertificates = trusted;
  }
  try {
    createSecureContext(commonOptions(tls)); // what OpenSSL itself refuses (e.g. a key too weak for its security level)
  } catch (e) {
    throw new ConfigError(`DICOM TLS: OpenSSL refuses the files (${[certFile, keyFile, trustedFile].filter(Boolean).join(', ')}): ${(e as Error).message}`);
  }
  return tls;
}
