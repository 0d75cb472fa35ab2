/** The command line (commander). */
import { Command } from 'commander';
import { ConfigError } from '../core/errors.js';
import { PACSNODE_VERSION } from '../core/version.js';
import { registerEchoCommand } from './echo.js';
import { registerFindCommand } from './find.js';
import { registerGetCommand } from './get.js';
import { registerMoveCommand } from './move.js';
import { registerStoreCommand } from './store.js';

export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program.name('pacsnode').description('An open-source DICOM server with Orthanc\'s REST API').version(PACSNODE_VERSION);
  program
    .command('serve')
    .description('run the server in the foreground')
    .option('-c, --config <path>', "configuration file or folder (Orthanc's JSON format, comments allowed)")
    .action(async (opts: { config?: string }) => {
      // Loaded on demand: the client commands do not need the server's modules (SQLite, fastify, the store).
      const { serve } = await import('./serve.js');
      await serve({ config: opts.config });
    });
  registerEchoCommand(program);
  registerStoreCommand(program);
  registerFindCommand(program);
  registerMoveCommand(program);
  registerGetCommand(program);
  await program.parseAsync(argv);
}

main(process.argv).catch((e: unknown) => {
  if (e instanceof ConfigError) {
    process.stderr.write(`pacsnode: configuration error: ${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`pacsnode: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
