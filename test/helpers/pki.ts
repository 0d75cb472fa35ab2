/** A throwaway PKI made by `openssl` in a temp folder, for the TLS tests (DICOM TLS and HTTPS). */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const HAS_OPENSSL = spawnSync('openssl', ['version']).status === 0;

export function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed:\n${r.stderr}`);
}

/**
 * The test PKI: `ca` and `other` (two unrelated CAs); `server`, `client` and `nosan` (no subjectAltName) signed by
 * `ca`; `rogue` signed by `other`. Leaves may serve both as TLS server and client (as DICOM nodes do).
 */
export function makePki(dir: string): void {
  for (const ca of ['ca', 'other']) {
    openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2',
      '-subj', `/CN=pacsnode test ${ca}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  }
  const leaves: Array<[string, string, boolean]> = [['server', 'ca', true], ['client', 'ca', true], ['nosan', 'ca', false], ['rogue', 'other', true]];
  for (const [name, ca, san] of leaves) {
    openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    writeFileSync(
      join(dir, `${name}.ext`),
      'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' +
        (san ? 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' : ''),
    );
    openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial',
      '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`]);
  }
  // The same key, encrypted: refused at start-up.
  openssl(dir, ['pkey', '-in', 'client.key', '-aes256', '-passout', 'pass:secret', '-out', 'encrypted.key']);
  writeFileSync(join(dir, 'garbage.pem'), 'this is not PEM\n');
}

