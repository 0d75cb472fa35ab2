/**
 * The DICOMweb server (Orthanc's DICOMweb plugin's role), mounted at `DicomWeb.Root` when `DicomWeb.Enable` (the
 * default): QIDO-RS, WADO-RS (metadata; retrieval, frames, bulk data), STOW-RS, and WADO-URI at `WadoRoot` when
 * `EnableWado`. Each part registers its own routes; the logic lives in `src/dicomweb/`.
 */
import { dicomWebOptions } from '../../dicomweb/options.js';
import type { RouteContext } from '../http-server.js';
import { registerQidoRoutes } from './dicomweb-qido.js';
import { registerWadoRsMetadataRoutes } from './dicomweb-metadata.js';
import { registerStowRoutes } from './dicomweb-stow.js';
import { registerWadoUriRoutes } from './dicomweb-wado-uri.js';
import { registerWadoRoutes } from './dicomweb-wado.js';

export function registerDicomWebRoutes(routes: RouteContext): void {
  const options = dicomWebOptions(routes.ctx.config);
  if (!options.enable) return;
  registerQidoRoutes(routes, options);
  registerWadoRsMetadataRoutes(routes, options);
  registerWadoRoutes(routes, options);
  registerStowRoutes(routes, options);

  if (options.enableWado) registerWadoUriRoutes(routes, options);
}
