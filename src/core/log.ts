/**
 * Category loggers over winston (STYLE.md habit 9). Categories follow Orthanc's: generic, http, dicom, store,
 * query, jobs, sqlite. Patient data is logged at debug level only.
 */
import winston from 'winston';

export type LogCategory = 'generic' | 'http' | 'dicom' | 'store' | 'query' | 'jobs' | 'sqlite' | 'config' | 'dicomweb';
export type LogLevel = 'error' | 'warn' | 'info' | 'verbose' | 'debug' | 'silent';

const root = winston.createLogger({
  level: initialLevel(),
  format: winston.format.combine(
    winston.format.timestamp(),
    winston.format.printf((info) => `${String(info.timestamp)} ${info.level.toUpperCase().padEnd(5)} [${String(info.category ?? 'generic')}] ${String(info.message)}`),
  ),
  transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'verbose', 'debug'] })],
});

function initialLevel(): string {
  // The one place that reads the environment for logging: tests run quiet unless asked.
  const fromEnv = process.env.PACSNODE_LOG_LEVEL;
  if (fromEnv) return fromEnv;
  return process.env.npm_lifecycle_event === 'test' ? 'error' : 'info';
}

/** A category logger. Calls below the current level cost a comparison: winston is not entered at all. */
export interface CategoryLogger {
  error(message: string): void;
  warn(message: string): void;
  info(message: string): void;
  verbose(message: string): void;
  debug(message: string): void;
  isEnabled(level: Exclude<LogLevel, 'silent'>): boolean;
}

const children = new Map<LogCategory, CategoryLogger>();

/** winston's npm priorities: a smaller number is more severe. */
const PRIORITY: Record<Exclude<LogLevel, 'silent'>, number> = { error: 0, warn: 1, info: 2, verbose: 4, debug: 5 };

/** The level of every category without its own (`setLogLevel`), and the categories' own (`setCategoryLogLevel`). */
let globalLevel: Exclude<LogLevel, 'silent'> = asLevel(root.level);
const categoryLevels = new Map<LogCategory, Exclude<LogLevel, 'silent'>>();

function asLevel(name: string): Exclude<LogLevel, 'silent'> {
  return name in PRIORITY ? (name as Exclude<LogLevel, 'silent'>) : 'info';
}

/** winston filters too: its level is the most verbose one in use, the facades decide per category. */
function syncRootLevel(): void {
  let most = globalLevel;
  for (const level of categoryLevels.values()) if (PRIORITY[level] > PRIORITY[most]) most = level;
  root.level = most;
}

export function logger(category: LogCategory): CategoryLogger {
  let facade = children.get(category);
  if (!facade) {
    const child = root.child({ category });
    const isEnabled = (level: Exclude<LogLevel, 'silent'>) =>
      !root.silent && PRIORITY[level] <= PRIORITY[categoryLevels.get(category) ?? globalLevel];
    const at = (level: Exclude<LogLevel, 'silent'>) => (message: string) => {
      if (isEnabled(level)) child.log(level, message);
    };
    facade = { error: at('error'), warn: at('warn'), info: at('info'), verbose: at('verbose'), debug: at('debug'), isEnabled };
    children.set(category, facade);
  }
  return facade;
}

export function setLogLevel(level: LogLevel): void {
  if (level === 'silent') {
    root.silent = true;
    return;
  }
  root.silent = false;
  globalLevel = level;
  syncRootLevel();
}

export function getLogLevel(): string {
  return root.silent ? 'silent' : globalLevel;
}

/** One category's own level (Orthanc's `/tools/log-level-{category}`); `undefined` follows the global level again. */
export function setCategoryLogLevel(category: LogCategory, level: Exclude<LogLevel, 'silent'> | undefined): void {
  if (level === undefined) categoryLevels.delete(category);
  else categoryLevels.set(category, level);
  syncRootLevel();
}

/** A category's effective level. */
export function getCategoryLogLevel(category: LogCategory): Exclude<LogLevel, 'silent'> {
  return categoryLevels.get(category) ?? globalLevel;
}
