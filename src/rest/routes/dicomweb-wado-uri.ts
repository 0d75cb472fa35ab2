/** WADO-URI at `DicomWeb.WadoRoot` (default `/wado`): the stored file of an instance as `application/dicom`. */
import { findWadoInstance, parseWadoUri } from '../../dicomweb/wado-uri.js';
import type { DicomWebOptions } from '../../dicomweb/options.js';
import type { RouteContext } from '../http-server.js';

export function registerWadoUriRoutes({ app, ctx }: RouteContext, options: DicomWebOptions): void {
  app.get(options.wadoRoot, async (request, reply) => {
    const query = request.url.indexOf('?');
    const wado = parseWadoUri(new URLSearchParams(query < 0 ? '' : request.url.slice(query + 1)));
    const row = findWadoInstance(ctx.store, wado);
    const { stream, size } = await ctx.store.openDicom(row.publicId);
    return reply.type('application/dicom').header('Content-Length', size).send(stream);
  });
}
