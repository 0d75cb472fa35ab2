/**
 * `pacsnode store [--aet] [--aec] [--recursive] HOST PORT PATH...`: sends DICOM files to a DICOM node over one
 * association (what DCMTK's storescu does). Folders are walked (their subfolders with --recursive); files found
 * in folders that are not DICOM instances are skipped, files named on the command line must be.
 *
 * Progress goes to stderr (one line updated in place on a terminal, one line per file otherwise); the summary to
 * stdout. Exit code 0 when every file was stored (or already there), 1 when some failed, 2 on bad usage or when
 * no association could be established.
 */
import type { Command } from 'commander';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isAssociationError } from '../dimse/scu/session.js';
import { storeInstances, type StoreFileResult, type StoreInput } from '../dimse/scu/store.js';
import { cliTarget, EXIT_FAILED, EXIT_OK, EXIT_USAGE, networkCommand, parsePort, type NetworkCliOptions } from './echo.js';

interface StoreCliOptions extends NetworkCliOptions {
  recursive: boolean;
}

class UsageError extends Error {}

/** The files to send, in the order given (folders sorted by name). */
export async function collectInputs(paths: readonly string[], recursive: boolean): Promise<StoreInput[]> {
  const out: StoreInput[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (recursive) await walk(path);
      } else if (entry.isFile()) {
        out.push({ path, optional: true });
      }
    }
  };
  for (const path of paths) {
    let info;
    try {
      info = await stat(path);
    } catch (e) {
      throw new UsageError(`${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or folder' : (e as Error).message}`);
    }
    if (info.isDirectory()) await walk(path);
    else out.push(path);
  }
  return out;
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** Writes progress to stderr: in place on a terminal, one line per file otherwise. */
class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private readonly started = process.hrtime.bigint();
  private sent = 0;
  private failed = 0;
  private bytes = 0;

  elapsedSeconds(): number {
    return Number(process.hrtime.bigint() - this.started) / 1e9;
  }

  update(result: StoreFileResult, done: number, total: number): void {
    if (result.outcome === 'failed') this.failed++;
    else if (result.outcome !== 'skipped') this.sent++;
    this.bytes += result.bytes;
    const counter = `[${String(done).padStart(String(total).length)}/${total}]`;
    const line = describe(result);
    if (!this.tty) {
      process.stderr.write(`${counter} ${line}\n`);
      return;
    }
    const clear = '\r\x1b[K';
    if (result.outcome !== 'sent') process.stderr.write(`${clear}${line}\n`);
    const seconds = this.elapsedSeconds();
    const rate = seconds > 0 ? (this.sent / seconds).toFixed(1) : '-';
    process.stderr.write(`${clear}${counter} sent ${this.sent}, failed ${this.failed}, ${megabytes(this.bytes)}, ${rate} files/s`);
  }

  finish(): void {
    if (this.tty) process.stderr.write('\r\x1b[K');
  }
}

function describe(r: StoreFileResult): string {
  const converted = r.converted ? ` (converted to ${r.sentTransferSyntaxUid})` : '';
  switch (r.outcome) {
    case 'sent':
      return `sent ${r.source}${converted}`;
    case 'warning':
      return `sent with a warning ${r.source}${converted}: ${r.message ?? ''}`;
    case 'already-stored':
      return `already stored ${r.source}: ${r.message ?? ''}`;
    case 'skipped':
      return `skipped ${r.source}: ${r.message ?? ''}`;
    default:
      return `FAILED ${r.source}${r.sopInstanceUid ? ` (${r.sopInstanceUid})` : ''}: ${r.message ?? ''}`;
  }
}

export async function storeCommand(host: string, port: number, paths: readonly string[], opts: StoreCliOptions): Promise<number> {
  let inputs: StoreInput[];
  try {
    inputs = await collectInputs(paths, opts.recursive);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`pacsnode store: ${e.message}\n`);
    return EXIT_USAGE;
  }
  if (inputs.length === 0) {
    process.stderr.write(`pacsnode store: no files found in ${paths.join(', ')}${opts.recursive ? '' : ' (--recursive walks subfolders)'}\n`);
    return EXIT_USAGE;
  }
  const progress = new Progress();
  let summary;
  try {
    summary = await storeInstances(cliTarget(host, port, opts), inputs, {
      onResult: (result, done, total) => progress.update(result, done, total),
    });
  } catch (e) {
    progress.finish();
    process.stderr.write(`pacsnode store: ${opts.aet} -> ${opts.aec}@${host}:${port}: ${(e as Error).message}\n`);
    return isAssociationError(e) ? EXIT_USAGE : EXIT_FAILED;
  }
  progress.finish();
  const seconds = progress.elapsedSeconds();
  const files = summary.sent + summary.alreadyStored;
  const rate = seconds > 0 ? `${(files / seconds).toFixed(1)} files/s, ${megabytes(summary.bytes / seconds)}/s` : '-';
  const warnings = summary.warnings > 0 ? ` (${summary.warnings} with warnings)` : '';
  process.stdout.write(
    `sent ${summary.sent}${warnings}, failed ${summary.failed}, already stored ${summary.alreadyStored}, skipped ${summary.skipped}: ` +
      `${megabytes(summary.bytes)} in ${seconds.toFixed(1)} s (${rate})\n`,
  );
  return summary.failed === 0 ? EXIT_OK : EXIT_FAILED;
}

export function registerStoreCommand(program: Command): void {
  networkCommand(
    program
      .command('store')
      .description('send DICOM files (and folders of them) to a DICOM node with C-STORE')
      .argument('<host>', 'host name or address of the peer')
      .argument('<port>', 'its DICOM port', parsePort)
      .argument('<paths...>', 'files and folders to send')
      .option('-r, --recursive', 'walk subfolders too', false),
  ).action(async (host: string, port: number, paths: string[], opts: StoreCliOptions) => {
    process.exitCode = await storeCommand(host, port, paths, opts);
  });
}
