/**
 * TLS material shared by DICOM TLS (`net/tls.ts`) and HTTPS (`rest/https.ts`): reading and checking PEM files at
 * start-up, where every problem is a `ConfigError` naming the configuration key and the file, and Orthanc's scale of
 * minimum protocol versions.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DEFAULT_CIPHERS, type SecureVersion } from 'node:tls';
import { ConfigError } from './errors.js';

/**
 * Orthanc's `DicomTlsMinimumProtocolVersion` values: 0 is the default profile (DCMTK's non-downgrading BCP 195
 * profile: TLS 1.2 or 1.3), 1 = SSL 3 and above, 2 = TLS 1.0, 3 = TLS 1.1, 4 = TLS 1.2, 5 = TLS 1.3 only. Node's
 * OpenSSL has no SSL 3, so 1 is TLS 1.0 and above. (`SslMinimumProtocolVersion`, civetweb's scale, is the same but
 * for 0, which there means every version: see `rest/https.ts`.)
 */
export function minimumTlsVersion(value: number): SecureVersion {
  const versions: SecureVersion[] = ['TLSv1.2', 'TLSv1', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];
  const version = versions[value];
  if (!Number.isInteger(value) || !version) throw new RangeError(`DicomTlsMinimumProtocolVersion ${value} is not 0..5`);
  return version;
}

/**
 * OpenSSL 3 refuses TLS 1.0 and 1.1 at its default security level 1: a cipher list that lowers it to 0, to be used
 * (on purpose) when the configuration asks for those versions.
 */
export function withLegacySecurityLevel(ciphers: string = DEFAULT_CIPHERS): string {
  return `${ciphers}:@SECLEVEL=0`;
}

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
/** PKCS #8 (plain or encrypted) and the traditional RSA / EC / DSA forms. */
const PRIVATE_KEY_BLOCK = /-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----[\s\S]*?-----END \1PRIVATE KEY-----/;

/** The bytes of a PEM file; a `ConfigError` "KEY: cannot read FILE (reason)" when it cannot be read. */
export function readPemFile(key: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new ConfigError(`${key}: cannot read ${file} (${(e as Error).message})`);
  }
}

/** The PEM text of every certificate of a file, in file order (possibly none). */
export function certificateBlocks(pem: Buffer): string[] {
  return pem.toString('latin1').match(CERTIFICATE_BLOCK) ?? [];
}

/** The PEM text of the first private key of a file, if any. */
export function privateKeyBlock(pem: Buffer): string | undefined {
  return PRIVATE_KEY_BLOCK.exec(pem.toString('latin1'))?.[0];
}

/** Every certificate of a PEM file, parsed; at least one. */
export function parseCertificates(key: string, file: string, pem: Buffer): X509Certificate[] {
  const blocks = certificateBlocks(pem);
  if (blocks.length === 0) throw new ConfigError(`${key}: ${file} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (e) {
      throw new ConfigError(`${key}: certificate ${i + 1} of ${file} cannot be parsed (${(e as Error).message})`);
    }
  });
}

/** The private key of a PEM file (the first one when the file also holds certificates); it must not be encrypted. */
export function parsePrivateKey(key: string, file: string, pem: Buffer | string): KeyObject {
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

/** A warning for a certificate outside its validity period (peers will refuse it), or undefined. */
export function validityWarning(key: string, file: string, certificate: X509Certificate, now = Date.now()): string | undefined {
  const subject = certificate.subject.replace(/\n/g, ', ');
  if (Date.parse(certificate.validTo) < now) return `${key}: the certificate in ${file} (${subject}) expired on ${certificate.validTo}`;
  if (Date.parse(certificate.validFrom) > now) return `${key}: the certificate in ${file} (${subject}) is not valid before ${certificate.validFrom}`;
  return undefined;
}
