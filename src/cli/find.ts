/**
 * `pacsnode find [--aet] [--aec] [-P|-S] [-L LEVEL] [-k KEY[=VALUE] ...] [--json|--table] HOST PORT`: a C-FIND to a
 * DICOM node (what DCMTK's findscu does). The answers go to stdout, as a table of the returned keys (default) or
 * as a DICOM JSON array (PS3.18 F); the count to stderr. Exit code 0 when the query completed (or was cut short
 * by --limit), 1 when the peer answered a failure or stopped answering (or Ctrl-C cancelled it), 2 on bad usage or
 * when no association could be established.
 *
 * Also the options and key parsing shared with `pacsnode move` and `pacsnode get`.
 */
import { type Command, InvalidArgumentError } from 'commander';
import type { DicomJsonAttribute, DicomJsonDataset } from '../dicom/json.js';
import { find, keyName, parseKeyTag, parseLevel, QueryKeyError, type QueryKeys, type QueryLevel, type QueryModel } from '../dimse/scu/find.js';
import { formatStatus, isAssociationError, Status } from '../dimse/scu/session.js';
import { Tags } from '../dicom/tag.js';
import { cliTarget, EXIT_FAILED, EXIT_OK, EXIT_USAGE, networkCommand, parsePort, type NetworkCliOptions } from './echo.js';

/** Options of the Query/Retrieve commands. */
export interface QueryCliOptions extends NetworkCliOptions {
  patientRoot?: boolean;
  studyRoot?: boolean;
  level?: string;
  key: string[];
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function parseCount(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1) throw new InvalidArgumentError('a number of answers, 1 or more');
  return n;
}

/** Adds the model, level and key options (DCMTK's -P, -S, -k) to a Q/R command. */
export function queryCommand(cmd: Command): Command {
  return networkCommand(
    cmd
      .option('-P, --patient-root', 'Patient Root information model')
      .option('-S, --study-root', 'Study Root information model (the default)')
      .option('-L, --level <level>', 'query/retrieve level: PATIENT, STUDY, SERIES or IMAGE (default STUDY, or the QueryRetrieveLevel key)')
      .option('-k, --key <key[=value]>', 'a key by keyword or tag (gggg,eeee), with a value to match or without one to return it; repeat', collect, []),
  );
}

/** The query the options describe, or a `QueryKeyError` saying what is wrong with them. */
export function queryFromOptions(opts: QueryCliOptions): { model: QueryModel; level: QueryLevel; keys: QueryKeys; order: string[] } {
  if (opts.patientRoot && opts.studyRoot) throw new QueryKeyError('-P (Patient Root) and -S (Study Root) exclude each other');
  const model: QueryModel = opts.patientRoot ? 'patient' : 'study';
  const keys: Record<string, string> = {};
  const order: string[] = [];
  let levelKey: string | undefined;
  for (const spec of opts.key) {
    const eq = spec.indexOf('=');
    const name = (eq < 0 ? spec : spec.slice(0, eq)).trim();
    const value = eq < 0 ? '' : spec.slice(eq + 1);
    const tag = parseKeyTag(name);
    if (tag === Tags.QueryRetrieveLevel) {
      if (value !== '') levelKey = value;
      continue;
    }
    const canonical = keyName(tag);
    if (!(canonical in keys)) order.push(canonical);
    keys[canonical] = value;
  }
  const levelText = opts.level ?? levelKey ?? 'STUDY';
  const level = parseLevel(levelText);
  if (opts.level !== undefined && levelKey !== undefined && parseLevel(levelKey) !== level) {
    throw new QueryKeyError(`-L ${opts.level} and -k QueryRetrieveLevel=${levelKey} contradict each other`);
  }
  return { model, level, keys, order };
}

/** Ctrl-C sends a C-CANCEL (a second one quits at once). */
export function cancelOnInterrupt(): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onSigint = (): void => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write('\ncancelling (C-CANCEL); Ctrl-C again to quit at once\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  return { signal: controller.signal, dispose: () => process.off('SIGINT', onSigint) };
}

// ------------------------------------------------------------------ table output

/** One cell: values joined with `\`, names by their alphabetic form, items and binary values counted. */
export function cellText(attribute: DicomJsonAttribute | undefined): string {
  if (!attribute) return '';
  if (attribute.InlineBinary !== undefined) return `(${Buffer.from(attribute.InlineBinary, 'base64').length} bytes)`;
  if (attribute.BulkDataURI !== undefined) return '(bulk data)';
  const values = attribute.Value ?? [];
  if (attribute.vr === 'SQ') return `(${values.length} item${values.length === 1 ? '' : 's'})`;
  return values
    .map((v) => {
      if (v === null || v === undefined) return '';
      if (typeof v === 'object') {
        const pn = v as { Alphabetic?: string; Ideographic?: string; Phonetic?: string };
        return [pn.Alphabetic ?? '', pn.Ideographic, pn.Phonetic].filter((x) => x !== undefined).join('=').replace(/=+$/, '');
      }
      return String(v);
    })
    .join('\\');
}

const MAX_CELL = 64;

/** The answers as an aligned table: the requested keys in their order, then any other returned tag. */
export function formatTable(answers: readonly DicomJsonDataset[], requested: readonly string[]): string {
  const hidden = new Set([Tags.QueryRetrieveLevel, Tags.SpecificCharacterSet].map((t) => t.toString(16).padStart(8, '0').toUpperCase()));
  const columns: { key: string; title: string }[] = requested.map((name) => ({
    key: parseKeyTag(name).toString(16).padStart(8, '0').toUpperCase(),
    title: name,
  }));
  const seen = new Set(columns.map((c) => c.key));
  const extra = new Set<string>();
  for (const answer of answers) for (const key of Object.keys(answer)) if (!seen.has(key) && !hidden.has(key)) extra.add(key);
  for (const key of [...extra].sort()) columns.push({ key, title: keyName(parseInt(key, 16) >>> 0) });
  if (columns.length === 0) return '';
  const clip = (s: string) => (s.length > MAX_CELL ? `${s.slice(0, MAX_CELL - 3)}...` : s);
  const rows = answers.map((a) => columns.map((c) => clip(cellText(a[c.key]))));
  const widths = columns.map((c, i) => Math.max(c.title.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(columns.map((c) => c.title)), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

// ------------------------------------------------------------------ the command

interface FindCliOptions extends QueryCliOptions {
  json?: boolean;
  table?: boolean;
  limit?: number;
}

/** Writes a message for a failed Q/R command and returns its exit code. */
export function reportError(command: string, where: string, e: unknown): number {
  if (e instanceof QueryKeyError || e instanceof RangeError || (e as NodeJS.ErrnoException | undefined)?.syscall === 'mkdir') {
    process.stderr.write(`pacsnode ${command}: ${(e as Error).message}\n`);
    return EXIT_USAGE;
  }
  process.stderr.write(`pacsnode ${command}: ${where}: ${(e as Error).message}\n`);
  return isAssociationError(e) ? EXIT_USAGE : EXIT_FAILED;
}

export async function findCommand(host: string, port: number, opts: FindCliOptions): Promise<number> {
  const where = `${opts.aet} -> ${opts.aec}@${host}:${port}`;
  if (opts.json && opts.table) {
    process.stderr.write('pacsnode find: --json and --table exclude each other\n');
    return EXIT_USAGE;
  }
  let query;
  try {
    query = queryFromOptions(opts);
  } catch (e) {
    return reportError('find', where, e);
  }
  const interrupt = cancelOnInterrupt();
  const answers: DicomJsonDataset[] = [];
  let jsonStarted = false;
  try {
    const generator = find(cliTarget(host, port, opts), query, { signal: interrupt.signal, limit: opts.limit });
    let next = await generator.next();
    while (!next.done) {
      if (opts.json) {
        // Streamed: each answer as it arrives, the whole a JSON array.
        process.stdout.write(`${jsonStarted ? ',\n' : '[\n'}${JSON.stringify(next.value)}`);
        jsonStarted = true;
      } else answers.push(next.value);
      next = await generator.next();
    }
    const outcome = next.value;
    if (opts.json) process.stdout.write(jsonStarted ? '\n]\n' : '[]\n');
    else process.stdout.write(formatTable(answers, query.order));
    const why = outcome.cancelled ? (opts.limit !== undefined && outcome.answers >= opts.limit ? ` (limit ${opts.limit}: C-CANCEL)` : ' (cancelled)') : '';
    const status = outcome.status === Status.Success ? '' : `, status ${formatStatus(outcome.status)}`;
    process.stderr.write(`${outcome.answers} answer${outcome.answers === 1 ? '' : 's'}${why}${status}\n`);
    // Cut short by --limit is what was asked; by Ctrl-C, the answers are incomplete.
    return interrupt.signal.aborted ? EXIT_FAILED : EXIT_OK;
  } catch (e) {
    if (opts.json && jsonStarted) process.stdout.write('\n]\n');
    else if (!opts.json && answers.length > 0) process.stdout.write(formatTable(answers, query.order));
    return reportError('find', where, e);
  } finally {
    interrupt.dispose();
  }
}

export function registerFindCommand(program: Command): void {
  queryCommand(
    program
      .command('find')
      .description('query a DICOM node with C-FIND (Patient Root or Study Root)')
      .argument('<host>', 'host name or address of the peer')
      .argument('<port>', 'its DICOM port', parsePort)
      .option('--json', 'print the answers as a DICOM JSON array (PS3.18 F)')
      .option('--table', 'print the answers as a table of the returned keys (the default)')
      .option('--limit <n>', 'stop after n answers with a C-CANCEL (DCMTK findscu --cancel)', parseCount),
  ).action(async (host: string, port: number, opts: FindCliOptions) => {
    process.exitCode = await findCommand(host, port, opts);
  });
}
