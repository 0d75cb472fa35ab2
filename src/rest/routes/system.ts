/** `/system` and `/statistics`. */
import { LEVEL_NAMES } from '../../store/levels.js';
import { keywordOf } from '../../dicom/dictionary.js';
import { formatTagOrthanc } from '../../dicom/tag.js';
import type { RouteContext } from '../http-server.js';
import { json } from '../request.js';

/** Orthanc's REST ApiVersion for each release pacsnode can present itself as. */
const API_VERSIONS: Record<string, number> = { '1.10.1': 16, '1.11.3': 18, '1.12.6': 27 };

export function registerSystemRoutes({ app, ctx }: RouteContext): void {
  const { config } = ctx;
  app.get('/system', async (_request, reply) => {
    const mainTags: Record<string, string[]> = {};
    ctx.store.mainDicomTagsPerLevel.forEach((tags, level) => {
      mainTags[LEVEL_NAMES[level]!] = tags.map((t) => keywordOf(t) ?? formatTagOrthanc(t));
    });
    const body = {
      ApiVersion: API_VERSIONS[config.OrthancApiVersion] ?? 27,
      Capabilities: { HasExtendedChanges: false, HasExtendedFind: true },
      CheckRevisions: config.CheckRevisions,
      DatabaseBackendPlugin: null,
      DatabaseServerIdentifier: 'Orthanc',
      DatabaseVersion: 6,
      DicomAet: config.DicomAet,
      DicomPort: config.DicomPort,
      HasLabels: true,
      HttpPort: config.HttpPort,
      // As Orthanc: insecure when remote clients can come in without credentials or with the default user.
      IsHttpServerSecure:
        !config.RemoteAccessAllowed ||
        (config.AuthenticationEnabled &&
          !(Object.keys(config.RegisteredUsers).length === 1 && config.RegisteredUsers.orthanc === 'orthanc')),
      MainDicomTags: mainTags,
      MaximumPatientCount: config.MaximumPatientCount,
      MaximumStorageMode: config.MaximumStorageMode,
      MaximumStorageSize: config.MaximumStorageSize,
      Name: config.Name,
      PacsnodeVersion: ctx.version,
      PluginsEnabled: false,
      ReadOnly: false,
      StorageAreaPlugin: null,
      StorageCompression: config.StorageCompression,
      UserMetadata: config.UserMetadata,
      Version: config.OrthancApiVersion,
    };
    return reply.type('application/json').send(json(body));
  });

  app.get('/statistics', async (_request, reply) => {
    const s = ctx.index.statistics();
    const mb = (n: number) => Math.floor(n / (1024 * 1024));
    return reply.type('application/json').send(
      json({
        CountInstances: s.countInstances,
        CountPatients: s.countPatients,
        CountSeries: s.countSeries,
        CountStudies: s.countStudies,
        TotalDiskSize: String(s.totalCompressedSize),
        TotalDiskSizeMB: mb(s.totalCompressedSize),
        TotalUncompressedSize: String(s.totalUncompressedSize),
        TotalUncompressedSizeMB: mb(s.totalUncompressedSize),
      }),
    );
  });
}
