// Loaded by mocha before the tests (.mocharc.json "require"): quiet logs unless PACSNODE_LOG_LEVEL asks otherwise.
import { setLogLevel, type LogLevel } from '../../src/core/log.js';

setLogLevel((process.env.PACSNODE_LOG_LEVEL as LogLevel | undefined) ?? 'error');
