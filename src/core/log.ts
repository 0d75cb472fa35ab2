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

const children = new Map<LogCategory, winston.Logger>();

export function logger(category: LogCategory): winston.Logger {
  let child = children.get(category);
  if (!child) {
    child = root.child({ category });
    children.set(category, child);
  }
  return child;
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
