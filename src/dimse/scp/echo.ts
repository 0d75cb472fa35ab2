/** C-ECHO SCP (PS3.7 §9.1.5). */
import { cEchoRsp, type CEchoRq } from '../messages.js';
import { Status } from '../status.js';
import type { ScpService } from './session.js';

export const echoScp: ScpService = {
  handle(session, contextId, request) {
    const rq = request as CEchoRq;
    void session.run(
      async () => {
        const status = session.handlers.policy.isAllowed('echo', session.info)
          ? await session.handlers.echo.echo(session.info)
          : Status.NotAuthorized;
        await session.respond(contextId, cEchoRsp(rq, status));
      },
      (e) => session.respond(contextId, cEchoRsp(rq, Status.ProcessingFailure, { ErrorComment: (e as Error).message })),
    );
  },
};
