/**
 * QIDO-RS routes (PS3.18 §10.6): `/studies`, `/series`, `/instances`, `/studies/{st}/series`,
 * `/studies/{st}/instances`, `/studies/{st}/series/{se}/instances` under `DicomWeb.Root`. Answers are DICOM JSON
 * (`application/dicom+json`, the default) or `multipart/related; type="application/dicom+xml"`, one part per match.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { DicomWebOptions } from '../../dicomweb/options.js';
import { checkScope, parseQidoQuery, runQido, type QidoLevel, type QidoScope } from '../../dicomweb/qido.js';
import { checkUid, publicBase } from '../../dicomweb/uris.js';
import { jsonOrXml, xmlMultipart } from '../../dicomweb/xml.js';
import { Level } from '../../store/levels.js';
import type { RouteContext } from '../http-server.js';

type UidParams = { Params: { study?: string; series?: string } };

const FUZZY_WARNING = '299 pacsnode: "The fuzzymatching parameter is not supported. Only literal matching has been performed."';

export function registerQidoRoutes({ app, ctx }: RouteContext, options: DicomWebOptions): void {
  const search = (level: QidoLevel) => async (request: FastifyRequest<UidParams>, reply: FastifyReply) => {
    const format = jsonOrXml(request.headers.accept, 'QIDO-RS');
    const scope: QidoScope = {};
    if (request.params.study !== undefined) scope.study = checkUid(request.params.study, 'StudyInstanceUID');
    if (request.params.series !== undefined) scope.series = checkUid(request.params.series, 'SeriesInstanceUID');
    const query = request.url.indexOf('?');
    const qido = parseQidoQuery(new URLSearchParams(query < 0 ? '' : request.url.slice(query + 1)), level, scope);
    await checkScope(ctx.engine, scope);
    const matches = await runQido({ engine: ctx.engine, caseSensitive: options.qidoCaseSensitive, base: publicBase(request, options) }, qido);
    if (qido.fuzzy) reply.header('Warning', FUZZY_WARNING);
    if (format === 'json') return reply.type('application/dicom+json').send(JSON.stringify(matches));
    // A multipart body has at least one part (RFC 2046): no match is an empty answer.
    if (matches.length === 0) return reply.code(204).send();
    const { contentType, body } = xmlMultipart(matches);
    return reply.type(contentType).send(body);
  };
  const root = options.root;
  app.get<UidParams>(`${root}studies`, search(Level.Study));
  app.get<UidParams>(`${root}series`, search(Level.Series));
  app.get<UidParams>(`${root}instances`, search(Level.Instance));
  app.get<UidParams>(`${root}studies/:study/series`, search(Level.Series));
  app.get<UidParams>(`${root}studies/:study/instances`, search(Level.Instance));
  app.get<UidParams>(`${root}studies/:study/series/:series/instances`, search(Level.Instance));
}
