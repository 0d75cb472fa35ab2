/**
 * WADO-RS Retrieve Metadata routes (PS3.18 §10.4.1.1.2): `/studies/{st}/metadata`,
 * `/studies/{st}/series/{se}/metadata`, `/studies/{st}/series/{se}/instances/{sop}/metadata` under
 * `DicomWeb.Root`, in DICOM JSON (a study's answer streamed series by series) or as PS3.19 XML documents in a
 * `multipart/related` answer, one part per instance.
 */
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { findResource, metadataCacheWritten, metadataChunks } from '../../dicomweb/metadata.js';
import type { DicomWebOptions } from '../../dicomweb/options.js';
import { checkUid, publicBase } from '../../dicomweb/uris.js';
import { jsonOrXml, xmlMultipart } from '../../dicomweb/xml.js';
import type { DicomJsonDataset } from '../../dicom/json.js';
import { Level } from '../../store/levels.js';
import type { RouteContext } from '../http-server.js';

type UidParams = { Params: { study: string; series?: string; instance?: string } };

export function registerWadoRsMetadataRoutes({ app, ctx }: RouteContext, options: DicomWebOptions): void {
  const context = { store: ctx.store, options };
  const handler = async (request: FastifyRequest<UidParams>, reply: FastifyReply) => {
    const format = jsonOrXml(request.headers.accept, 'WADO-RS metadata');
    const { params } = request;
    const study = checkUid(params.study, 'StudyInstanceUID');
    const series = params.series === undefined ? undefined : checkUid(params.series, 'SeriesInstanceUID');
    const instance = params.instance === undefined ? undefined : checkUid(params.instance, 'SOPInstanceUID');
    const row = findResource(ctx.store, study, series, instance);
    const chunks = metadataChunks(context, row, publicBase(request, options));
    if (format === 'json' && row.level === Level.Study) return reply.type('application/dicom+json').send(Readable.from(chunks));
    let text = '';
    for await (const chunk of chunks) text += chunk;
    if (format === 'json') return reply.type('application/dicom+json').send(text);
    // XML: one PS3.19 document per instance.
    const { contentType, body } = xmlMultipart(JSON.parse(text) as DicomJsonDataset[]);
    return reply.type(contentType).send(body);
  };
  // Cache writes still running finish before the store closes.
  app.addHook('onClose', async () => metadataCacheWritten(ctx.store));
  const root = options.root;
  app.get<UidParams>(`${root}studies/:study/metadata`, handler);
  app.get<UidParams>(`${root}studies/:study/series/:series/metadata`, handler);
  app.get<UidParams>(`${root}studies/:study/series/:series/instances/:instance/metadata`, handler);
}
