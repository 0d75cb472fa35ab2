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
import { isIP } from 'node:net';
import { connect as tlsConnect, createSecureContext, type ConnectionOptions, type SecureContextOptions, type TlsOptions } from 'node:tls';
import { ConfigError } from '../core/errors.js';
import { logger } from '../core/log.js';
import { minimumTlsVersion, parseCertificates, parsePrivateKey, readPemFile, validityWarning, withLegacySecurityLevel } from '../core/tls-files.js';
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

/** Orthanc's `DicomTlsMinimumProtocolVersion` scale; it lives with the PEM helpers HTTPS shares (core/tls-files.ts). */
export { minimumTlsVersion };

/**
 * The options shared by both roles: credentials, trusted CAs and protocol versions. TLS 1.0 and 1.1 need OpenSSL's
 * security level 0 (OpenSSL 3 refuses them at its default level 1): values 1 to 3 lower it, on purpose.
 */
function commonOptions(tls: DicomTls): SecureContextOptions {
  const options: SecureContextOptions = { minVersion: minimumTlsVersion(tls.minimumProtocolVersion) };
  if (tls.certificate) options.cert = tls.certificate;
  if (tls.privateKey) options.key = tls.privateKey;
  if (tls.trustedCertificates) options.ca = tls.trustedCertificates;
  if (tls.minimumProtocolVersion >= 1 && tls.minimumProtocolVersion <= 3) options.ciphers = withLegacySecurityLevel();
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
    const certificate = readPemFile('DicomTlsCertificate', certFile);
    const [leaf] = parseCertificates('DicomTlsCertificate', certFile, certificate);
    const privateKey = readPemFile('DicomTlsPrivateKey', keyFile);
    const keyObject = parsePrivateKey('DicomTlsPrivateKey', keyFile, privateKey);
    if (!leaf!.checkPrivateKey(keyObject)) {
      throw new ConfigError(`DicomTlsPrivateKey: ${keyFile} is not the private key of the certificate in ${certFile}`);
    }
    const expired = validityWarning('DicomTlsCertificate', certFile, leaf!);
    if (expired) log.warn(expired);
    tls.certificate = certificate;
    tls.privateKey = privateKey;
  }
  if (trustedFile) {
    const trusted = readPemFile('DicomTlsTrustedCertificates', trustedFile);
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
