/**
 * Category loggers over winston (STYLE.md habit 9). Categories follow Orthanc's: generic, http, dicom, store,
 * query, jobs, sqlite. Patient data is logged at debug level only.
 */
import winston from 'winston';

export type LogCategory = 'generic' | 'http' | 'dicom' | 'store' | 'query' | 'jobs' | 'sqlite' | 'config';
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

export function logger(category: LogCategory): CategoryLogger {
  let facade = children.get(category);
  if (!facade) {
    const child = root.child({ category });
    const isEnabled = (level: Exclude<LogLevel, 'silent'>) => !root.silent && root.isLevelEnabled(level);
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
  root.level = level;
}

export function getLogLevel(): string {
  return root.silent ? 'silent' : root.level;
}
