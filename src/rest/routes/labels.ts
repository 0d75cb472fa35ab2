/**
 * Labels of patients, studies, series and instances (Orthanc 1.12's `/{level}/{id}/labels` routes) and the list
 * of all labels in use (`/tools/labels`). A label is 1 to 64 letters, digits, `_` or `-` (Orthanc's rule; 400
 * otherwise). Orthanc logs no change for labels.
 */
import { PacsError } from '../../core/errors.js';
import { LEVEL_PATHS, LEVELS } from '../../store/levels.js';
import type { RouteContext } from '../http-server.js';
import { json } from '../request.js';

const LABEL_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** Orthanc's `ServerToolbox::CheckValidLabel`, with its message. */
export function checkValidLabel(label: string): string {
  if (!LABEL_RE.test(label)) {
    throw new PacsError(
      'ParameterOutOfRange',
      `A label must be a non-empty, alphanumeric string, possibly with '_' or '-' characters, with maximum 64 characters, but got: ${label}`,
    );
  }
  return label;
}

type Params = { Params: { id: string; label: string } };

export function registerLabelRoutes({ app, ctx }: RouteContext): void {
  const { index, store } = ctx;

  app.get('/tools/labels', async (_request, reply) => reply.type('application/json').send(json(index.allLabels())));

  for (const level of LEVELS) {
    const path = LEVEL_PATHS[level];

    app.get<{ Params: { id: string } }>(`/${path}/:id/labels`, async (request, reply) => {
      const row = store.resource(request.params.id, level);
      return reply.type('application/json').send(json(index.labels(row.id)));
    });

    app.get<Params>(`/${path}/:id/labels/:label`, async (request, reply) => {
      const row = store.resource(request.params.id, level);
      if (!index.labels(row.id).includes(request.params.label)) {
        throw new PacsError('UnknownResource', `${path}/${row.publicId} has no label ${JSON.stringify(request.params.label)}`);
      }
      return reply.type('text/plain').send('');
    });

    app.put<Params>(`/${path}/:id/labels/:label`, async (request, reply) => {
      const label = checkValidLabel(request.params.label);
      const row = store.resource(request.params.id, level);
      index.addLabel(row.id, label);
      return reply.type('text/plain').send('');
    });

    app.delete<Params>(`/${path}/:id/labels/:label`, async (request, reply) => {
      const label = checkValidLabel(request.params.label);
      const row = store.resource(request.params.id, level);
      index.removeLabel(row.id, label);
      return reply.type('text/plain').send('');
    });
  }
}
