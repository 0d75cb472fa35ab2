/**
 * The query engine over a real store: ~40 generated instances across patients, studies and series, queried at
 * every level. Every expected answer is computed here from the generated specs (plain JS filters), never read
 * back from the engine; resources are compared by public ID and in the order they were received.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { getLogLevel, setLogLevel, type LogLevel } from '../src/core/log.js';
import { Tags, type Tag } from '../src/dicom/tag.js';
import { SopClasses } from '../src/dicom/uids.js';
import type { WriteElement } from '../src/dicom/writer.js';
import { QueryEngine, type EngineOptions, type FindQuery } from '../src/query/engine.js';
import { FilesystemStorage } from '../src/store/filesystem-storage.js';
import { Level } from '../src/store/levels.js';
import type { IndexConstraint, LabelsFilter } from '../src/store/lookup.js';
import { SqliteIndex } from '../src/store/sqlite-index.js';
import { DicomStore } from '../src/store/store.js';
import { makeInstance } from './helpers/factory.js';

const InstitutionAddress: Tag = 0x00080081; // ST, not a main tag
const SliceThickness: Tag = 0x00180050; // DS, not a main tag
const USImageStorage = '1.2.840.10008.5.1.4.1.1.6.1';

// ---------------------------------------------------------------- the generated data

interface PatientDef {
  id: string;
  name: string;
  birthDate: string;
}

interface SeriesDef {
  modality: string;
  bodyPart: string;
  description: string;
  /** SliceThickness of every instance of the series (absent when undefined). */
  thickness?: string;
  sopClass: string;
  instances: number;
}

interface StudyDef {
  key: string;
  patient: number;
  date: string;
  time: string;
  description: string;
  accession: string;
  /** InstitutionAddress of every instance of the study (absent when undefined). */
  address?: string;
  series: SeriesDef[];
}

const PATIENTS: PatientDef[] = [
  { id: 'PID-MUL1', name: 'MÜLLER^Hans', birthDate: '19500101' },
  { id: 'PID-MUL2', name: 'Muller^Anna', birthDate: '19851224' },
  { id: 'PID-DOE1', name: 'DOE^JOHN', birthDate: '19700101' },
  { id: 'PID-DOE2', name: 'doe^jane', birthDate: '20000229' },
  { id: 'PID-SMI', name: 'Smith^Anna', birthDate: '19991231' },
  { id: 'PID-CJK', name: '\u{203FF}^TARO', birthDate: '19640506' },
  { id: 'PID-STR', name: 'Ström^Åsa', birthDate: '19881010' },
];

const CT = SopClasses.CTImageStorage;
const MR = SopClasses.MRImageStorage;
const SC = SopClasses.SecondaryCaptureImageStorage;

function series(modality: string, bodyPart: string, description: string, thickness: string | undefined, sopClass: string, instances: number): SeriesDef {
  return { modality, bodyPart, description, ...(thickness !== undefined ? { thickness } : {}), sopClass, instances };
}

const STUDIES: StudyDef[] = [
  {
    key: 'S0', patient: 0, date: '20190310', time: '081500', description: 'Brain MRI', accession: 'ACC-100', address: 'Main Street 1',
    series: [series('MR', 'HEAD', 'T1', '1.0', MR, 2), series('MR', 'HEAD', 'T2', '2.5', MR, 2)],
  },
  {
    key: 'S1', patient: 0, date: '20200115', time: '101500', description: 'Chest CT', accession: 'acc-101', address: 'Hauptstraße 5',
    series: [series('CT', 'CHEST', 'Axial', '1.25', CT, 5), series('OT', 'CHEST', 'Report', undefined, SC, 1)],
  },
  {
    key: 'S2', patient: 1, date: '20200620', time: '120000', description: 'brain ct', accession: 'ACC-102', address: 'Main Street 1',
    series: [series('CT', 'HEAD', 'Axial', '5', CT, 2), series('MR', 'HEAD', 'DWI', '3', MR, 1)],
  },
  {
    key: 'S3', patient: 2, date: '20201231', time: '130059.5', description: 'Knee [left]', accession: 'ACC-103', address: 'Rue de la Paix',
    series: [series('MR', 'KNEE', 'PD', '3', MR, 2), series('CR', 'KNEE', 'AP', undefined, SC, 1)],
  },
  {
    key: 'S4', patient: 2, date: '20210101', time: '235959', description: 'Abdomen US', accession: 'ACC-104', address: 'Main Street 22',
    series: [series('US', 'ABDOMEN', 'Liver', undefined, USImageStorage, 3)],
  },
  {
    key: 'S5', patient: 3, date: '20150505', time: '0700', description: 'Chest CR', accession: 'acc-105', address: 'Elm Road',
    series: [series('CR', 'CHEST', 'PA', undefined, SC, 1), series('CR', 'CHEST', 'LAT', undefined, SC, 1)],
  },
  {
    key: 'S6', patient: 4, date: '20200101', time: '120000', description: 'Brain MRI follow-up', accession: 'ACC-106', address: 'Main Street 1',
    series: [
      series('MR', 'HEAD', 'FLAIR', '2.5', MR, 4),
      series('CT', 'HEAD', 'Scout', '1.25', CT, 1),
      series('MR', 'HEAD', 'SWI', '1.0', MR, 1),
    ],
  },
  {
    key: 'S7', patient: 5, date: '20221111', time: '1100', description: 'Hand CR', accession: 'ACC-107',
    series: [series('CR', 'HAND', 'PA', undefined, SC, 2)],
  },
  {
    key: 'S8', patient: 6, date: '20230228', time: '093000', description: 'Knee (right)', accession: 'ACC-108', address: 'Storgatan 1',
    series: [series('MR', 'knee', 'PD fs', '3', MR, 2), series('MR', 'knee', 'T1 fs', '3', MR, 1)],
  },
  {
    key: 'S9', patient: 2, date: '20200310', time: '1000', description: 'Chest CT', accession: 'ACC-109', address: 'Main Street 1',
    series: [series('CT', 'CHEST', 'Lung', '1.0', CT, 3), series('CT', 'ABDOMEN', 'Soft tissue', '5', CT, 2)],
  },
];

/** One generated instance, with the public IDs the store answered. */
interface Rec {
  patient: PatientDef;
  study: StudyDef;
  studyUid: string;
  series: SeriesDef;
  seriesUid: string;
  sopUid: string;
  instanceNumber: number;
  ids: [patient: string, study: string, series: string, instance: string];
}

function generate(): Omit<Rec, 'ids'>[] {
  const out: Omit<Rec, 'ids'>[] = [];
  STUDIES.forEach((study, si) => {
    const studyUid = `1.2.826.0.1.3680043.9.7.${si + 1}`;
    study.series.forEach((se, sei) => {
      const seriesUid = `${studyUid}.${sei + 1}`;
      for (let i = 0; i < se.instances; i++) {
        out.push({
          patient: PATIENTS[study.patient]!,
          study,
          studyUid,
          series: se,
          seriesUid,
          sopUid: `${seriesUid}.${i + 1}`,
          instanceNumber: i + 1,
        });
      }
    });
  });
  // A fixed shuffle: the order of reception is not the order of the tree.
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function toFile(r: Omit<Rec, 'ids'>): Buffer {
  const extra: WriteElement[] = [{ tag: Tags.BodyPartExamined, vr: 'CS', value: r.series.bodyPart }];
  if (r.study.address !== undefined) extra.push({ tag: InstitutionAddress, vr: 'ST', value: r.study.address });
  if (r.series.thickness !== undefined) extra.push({ tag: SliceThickness, vr: 'DS', value: r.series.thickness });
  return makeInstance({
    specificCharacterSet: 'ISO_IR 192',
    patientId: r.patient.id,
    patientName: r.patient.name,
    patientBirthDate: r.patient.birthDate,
    studyInstanceUid: r.studyUid,
    studyDate: r.study.date,
    studyTime: r.study.time,
    studyDescription: r.study.description,
    accessionNumber: r.study.accession,
    seriesInstanceUid: r.seriesUid,
    seriesDescription: r.series.description,
    seriesNumber: r.study.series.indexOf(r.series) + 1,
    modality: r.series.modality,
    sopInstanceUid: r.sopUid,
    sopClassUid: r.series.sopClass,
    instanceNumber: r.instanceNumber,
    pixelBytes: 32,
    extra,
  });
}

// ---------------------------------------------------------------- independent matching helpers

/** Upper case without combining marks (written independently of the code under test). */
function fold(s: string): string {
  return s.normalize('NFD').replace(/\p{M}/gu, '').toUpperCase();
}

describe('query engine', () => {
  let tmp: string;
  let index: SqliteIndex;
  let store: DicomStore;
  let engine: QueryEngine;
  let never: QueryEngine;
  let recs: Rec[];
  /** Public ID -> rank of creation (the order of the first instance received for it). */
  const created = new Map<string, number>();
  let savedLevel: string;

  function makeEngine(options: Partial<EngineOptions>): QueryEngine {
    return new QueryEngine(store, { storageAccessOnFind: 'Always', limitFindResults: 0, limitFindInstances: 0, ...options });
  }

  before(async () => {
    savedLevel = getLogLevel();
    setLogLevel('error');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pacsnode-query-'));
    index = new SqliteIndex(':memory:');
    const storage = new FilesystemStorage(path.join(tmp, 'storage'), { sync: false });
    store = new DicomStore(index, storage, {
      storageCompression: false,
      overwriteInstances: false,
      limits: { maxStorageSize: 0, maxPatientCount: 0, mode: 'Recycle' },
      stableAge: 60,
      defaultEncoding: 'Latin1',
    });
    await store.open();
    engine = makeEngine({});
    never = makeEngine({ storageAccessOnFind: 'Never' });
    recs = [];
    for (const r of generate()) {
      const result = await store.store(toFile(r), { kind: 'rest' });
      expect(result.Status).to.equal('Success');
      const ids: Rec['ids'] = [result.ParentPatient, result.ParentStudy, result.ParentSeries, result.ID];
      for (const id of ids) if (!created.has(id)) created.set(id, created.size);
      recs.push({ ...r, ids });
    }
  });

  after(async () => {
    await store?.close();
    index?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    setLogLevel(savedLevel as LogLevel);
  });

  /** Public IDs at `level` of the resources holding an instance that satisfies `pred`, in order of creation. */
  function expected(level: Level, pred: (r: Rec) => boolean = () => true): string[] {
    const ids = new Set(recs.filter(pred).map((r) => r.ids[level]));
    return [...ids].sort((a, b) => created.get(a)! - created.get(b)!);
  }

  /** Public IDs at `level` of the studies whose definition satisfies `pred`, in order of creation. */
  function expectedStudies(pred: (s: StudyDef) => boolean): string[] {
    return expected(Level.Study, (r) => pred(r.study));
  }

  async function find(
    level: Level,
    constraints: Array<[Tag, string]>,
    extra: Omit<FindQuery, 'level' | 'constraints'> = {},
    on: QueryEngine = engine,
  ): Promise<string[]> {
    const rows = await on.find({ level, constraints: constraints.map(([tag, value]) => ({ tag, value })), ...extra });
    for (const row of rows) expect(row.level).to.equal(level);
    return rows.map((r) => r.publicId);
  }

  function internalId(publicId: string): number {
    return index.findByPublicId(publicId)!.id;
  }

  const studyOf = (key: string) => expectedStudies((s) => s.key === key)[0]!;

  it('stores the generated tree', () => {
    expect(recs.length).to.be.within(35, 45);
    const stats = index.statistics();
    expect(stats.countPatients).to.equal(new Set(recs.map((r) => r.patient.id)).size);
    expect(stats.countStudies).to.equal(STUDIES.length);
    expect(stats.countSeries).to.equal(STUDIES.reduce((n, s) => n + s.series.length, 0));
    expect(stats.countInstances).to.equal(recs.length);
  });

  // ---------------------------------------------------------------- one table of find() cases

  interface Case {
    title: string;
    level: Level;
    constraints: Array<[Tag, string]>;
    caseSensitive?: boolean;
    expect: (r: Rec) => boolean;
  }

  const P = Level.Patient;
  const ST = Level.Study;
  const SE = Level.Series;
  const IN = Level.Instance;
  const T = Tags;

  const cases: Record<string, Case[]> = {
    'patient level': [
      { title: 'no constraint: every patient', level: P, constraints: [], expect: () => true },
      { title: 'universal values are no constraint', level: P, constraints: [[T.PatientName, '*'], [T.PatientID, '']], expect: () => true },
      { title: 'PatientID exact', level: P, constraints: [[T.PatientID, 'PID-DOE1']], expect: (r) => r.patient.id === 'PID-DOE1' },
      { title: 'PatientID exact is not a prefix', level: P, constraints: [[T.PatientID, 'PID-DOE']], expect: () => false },
      {
        title: 'PatientID wildcard ?',
        level: P,
        constraints: [[T.PatientID, 'PID-MUL?']],
        expect: (r) => /^PID-MUL.$/.test(r.patient.id),
      },
      {
        title: 'PatientID wildcard, case-sensitive: lower case finds nothing',
        level: P,
        constraints: [[T.PatientID, 'pid-mul*']],
        caseSensitive: true,
        expect: () => false,
      },
      {
        title: 'PatientID wildcard, case-insensitive',
        level: P,
        constraints: [[T.PatientID, 'pid-mul*']],
        caseSensitive: false,
        expect: (r) => r.patient.id.toLowerCase().startsWith('pid-mul'),
      },
      {
        title: 'PatientName: accents and case are ignored (MÜLLER* finds Muller too)',
        level: P,
        constraints: [[T.PatientName, 'MÜLLER*']],
        expect: (r) => fold(r.patient.name).startsWith('MULLER'),
      },
      {
        title: 'PatientName exact, other case, even when CaseSensitive',
        level: P,
        constraints: [[T.PatientName, 'muller^anna']],
        caseSensitive: true,
        expect: (r) => fold(r.patient.name) === 'MULLER^ANNA',
      },
      {
        title: 'PatientName leading wildcard',
        level: P,
        constraints: [[T.PatientName, '*anna']],
        expect: (r) => fold(r.patient.name).endsWith('^ANNA'),
      },
      {
        title: 'PatientName ? and * in the middle',
        level: P,
        constraints: [[T.PatientName, 'D?E^*N']],
        expect: (r) => /^D.E\^.*N$/.test(fold(r.patient.name)),
      },
      {
        title: 'PatientName list',
        level: P,
        constraints: [[T.PatientName, 'doe^john\\STROM^ASA']],
        expect: (r) => ['DOE^JOHN', 'STROM^ASA'].includes(fold(r.patient.name)),
      },
      {
        title: 'PatientName with a prefix outside the Basic Multilingual Plane',
        level: P,
        constraints: [[T.PatientName, '\u{203FF}*']],
        expect: (r) => r.patient.name.startsWith('\u{203FF}'),
      },
      {
        title: 'PatientBirthDate closed range',
        level: P,
        constraints: [[T.PatientBirthDate, '19700101-19991231']],
        expect: (r) => r.patient.birthDate >= '19700101' && r.patient.birthDate <= '19991231',
      },
      {
        title: 'PatientBirthDate open-lower range',
        level: P,
        constraints: [[T.PatientBirthDate, '-19700101']],
        expect: (r) => r.patient.birthDate <= '19700101',
      },
      {
        title: 'PatientBirthDate open-upper range',
        level: P,
        constraints: [[T.PatientBirthDate, '19991231-']],
        expect: (r) => r.patient.birthDate >= '19991231',
      },
      {
        title: 'a descendant study tag at patient level (StudyDate)',
        level: P,
        constraints: [[T.StudyDate, '2021-']],
        expect: (r) => r.study.date >= '2021',
      },
      {
        title: 'a descendant series tag at patient level (Modality)',
        level: P,
        constraints: [[T.Modality, 'US\\CR']],
        expect: (r) => ['US', 'CR'].includes(r.series.modality),
      },
    ],
    'study level': [
      { title: 'no constraint: every study', level: ST, constraints: [], expect: () => true },
      { title: 'StudyDate exact', level: ST, constraints: [[T.StudyDate, '20200620']], expect: (r) => r.study.date === '20200620' },
      {
        title: 'StudyDate closed range (bounds included)',
        level: ST,
        constraints: [[T.StudyDate, '20200101-20201231']],
        expect: (r) => r.study.date >= '20200101' && r.study.date <= '20201231',
      },
      {
        title: 'StudyDate open-lower range',
        level: ST,
        constraints: [[T.StudyDate, '-20200115']],
        expect: (r) => r.study.date <= '20200115',
      },
      {
        title: 'StudyDate open-upper range',
        level: ST,
        constraints: [[T.StudyDate, '20201231-']],
        expect: (r) => r.study.date >= '20201231',
      },
      {
        title: 'StudyDate list',
        level: ST,
        constraints: [[T.StudyDate, '20150505\\20230228\\20000101']],
        expect: (r) => ['20150505', '20230228'].includes(r.study.date),
      },
      {
        title: 'StudyTime range: the upper bound covers its whole minute',
        level: ST,
        constraints: [[T.StudyTime, '1000-1200']],
        expect: (r) => r.study.time >= '1000' && r.study.time.slice(0, 4) <= '1200',
      },
      {
        title: 'StudyTime range up to 13:00 covers 13:00:59.5',
        level: ST,
        constraints: [[T.StudyTime, '1300-1300']],
        expect: (r) => r.study.time.startsWith('1300'),
      },
      {
        title: 'StudyTime open-lower range',
        level: ST,
        constraints: [[T.StudyTime, '-0800']],
        expect: (r) => r.study.time.slice(0, 4) <= '0800',
      },
      {
        title: 'AccessionNumber exact, case-sensitive',
        level: ST,
        constraints: [[T.AccessionNumber, 'ACC-101']],
        caseSensitive: true,
        expect: (r) => r.study.accession === 'ACC-101',
      },
      {
        title: 'AccessionNumber exact, case-insensitive',
        level: ST,
        constraints: [[T.AccessionNumber, 'ACC-101']],
        caseSensitive: false,
        expect: (r) => r.study.accession.toUpperCase() === 'ACC-101',
      },
      {
        title: 'AccessionNumber wildcard, case-sensitive (default)',
        level: ST,
        constraints: [[T.AccessionNumber, 'acc*']],
        expect: (r) => r.study.accession.startsWith('acc'),
      },
      {
        title: 'AccessionNumber wildcard, case-insensitive',
        level: ST,
        constraints: [[T.AccessionNumber, 'acc-10?']],
        caseSensitive: false,
        expect: (r) => /^ACC-10.$/.test(r.study.accession.toUpperCase()),
      },
      {
        title: 'AccessionNumber list, case-sensitive',
        level: ST,
        constraints: [[T.AccessionNumber, 'acc-100\\acc-105']],
        caseSensitive: true,
        expect: (r) => ['acc-100', 'acc-105'].includes(r.study.accession),
      },
      {
        title: 'AccessionNumber list, case-insensitive',
        level: ST,
        constraints: [[T.AccessionNumber, 'acc-100\\acc-105']],
        caseSensitive: false,
        expect: (r) => ['ACC-100', 'ACC-105'].includes(r.study.accession.toUpperCase()),
      },
      {
        title: 'StudyInstanceUID list (UIDs: no prefix matching)',
        level: ST,
        constraints: [[T.StudyInstanceUID, '1.2.826.0.1.3680043.9.7.1\\1.2.826.0.1.3680043.9.7.10']],
        expect: (r) => ['1.2.826.0.1.3680043.9.7.1', '1.2.826.0.1.3680043.9.7.10'].includes(r.studyUid),
      },
      {
        title: 'StudyInstanceUID: `*` is not a wildcard in a UID',
        level: ST,
        constraints: [[T.StudyInstanceUID, '1.2.826.0.1.3680043.9.7.*']],
        expect: () => false,
      },
      {
        title: 'StudyDescription wildcard, case-sensitive',
        level: ST,
        constraints: [[T.StudyDescription, 'brain*']],
        caseSensitive: true,
        expect: (r) => r.study.description.startsWith('brain'),
      },
      {
        title: 'StudyDescription wildcard, case-insensitive',
        level: ST,
        constraints: [[T.StudyDescription, 'brain*']],
        caseSensitive: false,
        expect: (r) => r.study.description.toUpperCase().startsWith('BRAIN'),
      },
      {
        title: 'StudyDescription with a literal [',
        level: ST,
        constraints: [[T.StudyDescription, 'Knee [l*']],
        expect: (r) => r.study.description.startsWith('Knee [l'),
      },
      {
        title: 'StudyDescription: ? matches a literal [',
        level: ST,
        constraints: [[T.StudyDescription, 'Knee ?left]']],
        expect: (r) => /^Knee .left\]$/.test(r.study.description),
      },
      {
        title: 'StudyDescription with literal parentheses',
        level: ST,
        constraints: [[T.StudyDescription, '*(right)']],
        expect: (r) => r.study.description.endsWith('(right)'),
      },
      {
        title: 'ancestor: PatientName at study level',
        level: ST,
        constraints: [[T.PatientName, 'MULLER*']],
        expect: (r) => fold(r.patient.name).startsWith('MULLER'),
      },
      {
        title: 'ancestor and own tags together',
        level: ST,
        constraints: [[T.PatientName, 'DOE*'], [T.StudyDate, '20200301-']],
        expect: (r) => fold(r.patient.name).startsWith('DOE') && r.study.date >= '20200301',
      },
      {
        title: 'ModalitiesInStudy list',
        level: ST,
        constraints: [[T.ModalitiesInStudy, 'CT\\MR']],
        expect: (r) => ['CT', 'MR'].includes(r.series.modality),
      },
      {
        title: 'ModalitiesInStudy single value',
        level: ST,
        constraints: [[T.ModalitiesInStudy, 'CR']],
        expect: (r) => r.series.modality === 'CR',
      },
      {
        title: 'ModalitiesInStudy, case-sensitive: lower case finds nothing',
        level: ST,
        constraints: [[T.ModalitiesInStudy, 'ct']],
        caseSensitive: true,
        expect: () => false,
      },
      {
        title: 'ModalitiesInStudy, case-insensitive',
        level: ST,
        constraints: [[T.ModalitiesInStudy, 'ct']],
        caseSensitive: false,
        expect: (r) => r.series.modality === 'CT',
      },
      {
        title: 'descendant series tag: Modality at study level',
        level: ST,
        constraints: [[T.Modality, 'US']],
        expect: (r) => r.series.modality === 'US',
      },
      {
        title: 'descendant series tag: BodyPartExamined, case-sensitive',
        level: ST,
        constraints: [[T.BodyPartExamined, 'KNEE']],
        caseSensitive: true,
        expect: (r) => r.series.bodyPart === 'KNEE',
      },
      {
        title: 'descendant series tag: BodyPartExamined, case-insensitive',
        level: ST,
        constraints: [[T.BodyPartExamined, 'KNEE']],
        caseSensitive: false,
        expect: (r) => r.series.bodyPart.toUpperCase() === 'KNEE',
      },
      {
        title: 'descendant instance tag: InstanceNumber at study level',
        level: ST,
        constraints: [[T.InstanceNumber, '4']],
        expect: (r) => r.instanceNumber === 4,
      },
      {
        title: 'descendant instance tag: SOPInstanceUID list at study level',
        level: ST,
        constraints: [[T.SOPInstanceUID, '1.2.826.0.1.3680043.9.7.2.1.5\\1.2.826.0.1.3680043.9.7.9.2.1']],
        expect: (r) => ['1.2.826.0.1.3680043.9.7.2.1.5', '1.2.826.0.1.3680043.9.7.9.2.1'].includes(r.sopUid),
      },
      {
        title: 'a constraint that matches nothing',
        level: ST,
        constraints: [[T.StudyDate, '19000101-19001231']],
        expect: () => false,
      },
    ],
    'series level': [
      { title: 'no constraint: every series', level: SE, constraints: [], expect: () => true },
      { title: 'Modality exact', level: SE, constraints: [[T.Modality, 'MR']], expect: (r) => r.series.modality === 'MR' },
      {
        title: 'Modality, case-sensitive',
        level: SE,
        constraints: [[T.Modality, 'mr']],
        caseSensitive: true,
        expect: () => false,
      },
      {
        title: 'Modality, case-insensitive',
        level: SE,
        constraints: [[T.Modality, 'mr']],
        caseSensitive: false,
        expect: (r) => r.series.modality === 'MR',
      },
      {
        title: 'SeriesDescription trailing part',
        level: SE,
        constraints: [[T.SeriesDescription, '* fs']],
        expect: (r) => r.series.description.endsWith(' fs'),
      },
      {
        title: 'BodyPartExamined list',
        level: SE,
        constraints: [[T.BodyPartExamined, 'HAND\\ABDOMEN']],
        expect: (r) => ['HAND', 'ABDOMEN'].includes(r.series.bodyPart),
      },
      {
        title: 'ancestor two levels up: PatientName at series level',
        level: SE,
        constraints: [[T.PatientName, 'DOE^JANE']],
        expect: (r) => fold(r.patient.name) === 'DOE^JANE',
      },
      {
        title: 'study range and own tag',
        level: SE,
        constraints: [[T.StudyDate, '20200101-20201231'], [T.Modality, 'CT']],
        expect: (r) => r.study.date >= '20200101' && r.study.date <= '20201231' && r.series.modality === 'CT',
      },
      {
        title: 'descendant instance tag at series level',
        level: SE,
        constraints: [[T.InstanceNumber, '3']],
        expect: (r) => r.instanceNumber === 3,
      },
    ],
    'instance level': [
      { title: 'no constraint: every instance', level: IN, constraints: [], expect: () => true },
      {
        title: 'SOPInstanceUID exact',
        level: IN,
        constraints: [[T.SOPInstanceUID, '1.2.826.0.1.3680043.9.7.7.1.4']],
        expect: (r) => r.sopUid === '1.2.826.0.1.3680043.9.7.7.1.4',
      },
      { title: 'InstanceNumber exact', level: IN, constraints: [[T.InstanceNumber, '2']], expect: (r) => r.instanceNumber === 2 },
      {
        title: 'ancestor three levels up without a literal prefix: PatientName *TARO',
        level: IN,
        constraints: [[T.PatientName, '*TARO']],
        expect: (r) => r.patient.name.endsWith('TARO'),
      },
      {
        title: 'ancestors at two levels',
        level: IN,
        constraints: [[T.StudyDate, '-20191231'], [T.Modality, 'MR']],
        expect: (r) => r.study.date <= '20191231' && r.series.modality === 'MR',
      },
      {
        title: 'ancestor at every level',
        level: IN,
        constraints: [[T.PatientID, 'PID-*'], [T.AccessionNumber, 'ACC-109'], [T.SeriesDescription, 'Lung'], [T.InstanceNumber, '2\\3']],
        expect: (r) => r.study.accession === 'ACC-109' && r.series.description === 'Lung' && [2, 3].includes(r.instanceNumber),
      },
    ],
  };

  for (const [group, rows] of Object.entries(cases)) {
    describe(group, () => {
      for (const c of rows) {
        it(c.title, async () => {
          const want = expected(c.level, c.expect);
          const got = await find(c.level, c.constraints, c.caseSensitive === undefined ? {} : { caseSensitive: c.caseSensitive });
          expect(got).to.deep.equal(want);
        });
      }
    });
  }

  it('the cases above are not trivial: most of them select some but not all resources', () => {
    let proper = 0;
    let total = 0;
    for (const rows of Object.values(cases)) {
      for (const c of rows) {
        total++;
        const n = expected(c.level, c.expect).length;
        if (n > 0 && n < expected(c.level).length) proper++;
      }
    }
    expect(proper / total).to.be.greaterThan(0.7);
  });

  // ---------------------------------------------------------------- tags read from the files

  describe('constraints on tags that are not main tags', () => {
    it('InstitutionAddress is matched on the files when StorageAccessOnFind is Always', async () => {
      const want = expectedStudies((s) => s.address?.startsWith('Main Street') ?? false);
      expect(want.length).to.be.within(2, STUDIES.length - 1);
      expect(await find(ST, [[InstitutionAddress, 'Main Street*']])).to.deep.equal(want);
    });

    it('an absent attribute matches only universal matching', async () => {
      const want = expectedStudies((s) => s.address !== undefined);
      expect(await find(ST, [[InstitutionAddress, '?*']])).to.deep.equal(want);
      expect(await find(ST, [[InstitutionAddress, '*']])).to.deep.equal(expected(ST));
    });

    it('follows the case sensitivity of the query', async () => {
      expect(await find(ST, [[InstitutionAddress, 'hauptstraße 5']], { caseSensitive: true })).to.deep.equal([]);
      expect(await find(ST, [[InstitutionAddress, 'hauptstraße 5']], { caseSensitive: false })).to.deep.equal(
        expectedStudies((s) => s.address === 'Hauptstraße 5'),
      );
    });

    it('is ignored when StorageAccessOnFind is Never', async () => {
      expect(await find(ST, [[InstitutionAddress, 'Main Street*']], {}, never)).to.deep.equal(expected(ST));
      expect(await find(IN, [[SliceThickness, '1.25']], {}, never)).to.deep.equal(expected(IN));
    });

    it('combines with indexed constraints', async () => {
      const want = expectedStudies((s) => (s.address?.startsWith('Main') ?? false) && s.date >= '20200101');
      expect(want.length).to.be.greaterThan(1);
      expect(await find(ST, [[InstitutionAddress, 'Main*'], [T.StudyDate, '20200101-']])).to.deep.equal(want);
    });

    it('SliceThickness (DS) at instance and series level', async () => {
      expect(await find(IN, [[SliceThickness, '1.25']])).to.deep.equal(expected(IN, (r) => r.series.thickness === '1.25'));
      expect(await find(SE, [[SliceThickness, '2.5\\5']])).to.deep.equal(
        expected(SE, (r) => ['2.5', '5'].includes(r.series.thickness ?? '')),
      );
    });

    it('at study level, the file of the first instance received stands for the study', async () => {
      // Each study's representative is the first of its instances that was received.
      const firstOfStudy = new Map<string, Rec>();
      for (const r of [...recs].sort((a, b) => created.get(a.ids[3])! - created.get(b.ids[3])!)) {
        if (!firstOfStudy.has(r.ids[1])) firstOfStudy.set(r.ids[1], r);
      }
      const want = expected(ST).filter((id) => firstOfStudy.get(id)!.series.thickness === '1.0');
      const some = expected(ST, (r) => r.series.thickness === '1.0');
      expect(await find(ST, [[SliceThickness, '1.0']])).to.deep.equal(want);
      // The representative rule is what decides here: some studies hold 1.0 in another series.
      expect(want.length).to.be.greaterThan(0);
      expect(some.length).to.be.greaterThan(want.length);
    });

    it('Since and Limit apply after the file filter', async () => {
      const want = expectedStudies((s) => s.address?.startsWith('Main') ?? false);
      expect(want.length).to.be.at.least(4);
      expect(await find(ST, [[InstitutionAddress, 'Main*']], { since: 1, limit: 2 })).to.deep.equal(want.slice(1, 3));
      expect(await find(ST, [[InstitutionAddress, 'Main*']], { since: want.length })).to.deep.equal([]);
      expect(await find(ST, [[InstitutionAddress, 'Main*']], { limit: 1 })).to.deep.equal(want.slice(0, 1));
    });
  });

  // ---------------------------------------------------------------- paging

  describe('Since and Limit', () => {
    for (const level of [P, ST, SE, IN]) {
      it(`pages through level ${Level[level]} in a stable order`, async () => {
        const all = expected(level);
        const pageSize = level === IN ? 7 : 3;
        const pages: string[] = [];
        for (let since = 0; since < all.length + pageSize; since += pageSize) {
          const page = await find(level, [], { since, limit: pageSize });
          expect(page.length).to.equal(Math.max(0, Math.min(pageSize, all.length - since)));
          pages.push(...page);
        }
        expect(pages).to.deep.equal(all);
        expect(await find(level, [])).to.deep.equal(all);
      });
    }

    it('pages through a constrained query', async () => {
      const want = expected(IN, (r) => r.series.modality === 'MR');
      expect(await find(IN, [[T.Modality, 'MR']], { since: 3, limit: 4 })).to.deep.equal(want.slice(3, 7));
      expect(await find(IN, [[T.Modality, 'MR']], { since: want.length - 2, limit: 4 })).to.deep.equal(want.slice(-2));
    });

    it('limit 0 means no limit', async () => {
      expect(await find(SE, [], { limit: 0 })).to.deep.equal(expected(SE));
    });
  });

  // ---------------------------------------------------------------- labels

  describe('labels', () => {
    const LABELS: Record<string, string[]> = { S0: ['teaching', 'urgent'], S2: ['teaching'], S4: ['urgent'], S6: ['archive'] };

    before(() => {
      for (const [key, labels] of Object.entries(LABELS)) for (const l of labels) index.addLabel(internalId(studyOf(key)), l);
    });
    after(() => {
      for (const [key, labels] of Object.entries(LABELS)) for (const l of labels) index.removeLabel(internalId(studyOf(key)), l);
    });

    const has = (s: StudyDef, l: string) => (LABELS[s.key] ?? []).includes(l);
    const rows: Array<[LabelsFilter, (s: StudyDef) => boolean]> = [
      [{ labels: ['teaching', 'urgent'], constraint: 'All' }, (s) => has(s, 'teaching') && has(s, 'urgent')],
      [{ labels: ['teaching'], constraint: 'All' }, (s) => has(s, 'teaching')],
      [{ labels: ['teaching', 'teaching'], constraint: 'All' }, (s) => has(s, 'teaching')],
      [{ labels: ['teaching', 'urgent'], constraint: 'Any' }, (s) => has(s, 'teaching') || has(s, 'urgent')],
      [{ labels: ['nothing'], constraint: 'Any' }, () => false],
      [{ labels: ['teaching', 'urgent'], constraint: 'None' }, (s) => !has(s, 'teaching') && !has(s, 'urgent')],
      [{ labels: [], constraint: 'All' }, () => true],
    ];
    for (const [labels, pred] of rows) {
      it(`${labels.constraint} of [${labels.labels.join(', ')}]`, async () => {
        expect(await find(ST, [], { labels })).to.deep.equal(expectedStudies(pred));
      });
    }

    it('with an indexed constraint', async () => {
      const labels: LabelsFilter = { labels: ['teaching', 'urgent'], constraint: 'Any' };
      expect(await find(ST, [[T.PatientName, 'MULLER*']], { labels })).to.deep.equal(
        expectedStudies((s) => fold(PATIENTS[s.patient]!.name).startsWith('MULLER') && (has(s, 'teaching') || has(s, 'urgent'))),
      );
    });

    it('with a constraint matched on the files', async () => {
      const labels: LabelsFilter = { labels: ['teaching', 'urgent'], constraint: 'Any' };
      expect(await find(ST, [[InstitutionAddress, 'Main*']], { labels })).to.deep.equal(
        expectedStudies((s) => (s.address?.startsWith('Main') ?? false) && (has(s, 'teaching') || has(s, 'urgent'))),
      );
    });

    it('labels of one level do not leak to another', async () => {
      expect(await find(SE, [], { labels: { labels: ['teaching'], constraint: 'Any' } })).to.deep.equal([]);
    });
  });

  // ---------------------------------------------------------------- caps

  describe('LimitFindResults and LimitFindInstances', () => {
    let capped: QueryEngine;
    before(() => {
      capped = makeEngine({ limitFindResults: 3, limitFindInstances: 5 });
    });

    for (const level of [P, ST, SE]) {
      it(`LimitFindResults caps level ${Level[level]}`, async () => {
        expect(await find(level, [], {}, capped)).to.deep.equal(expected(level).slice(0, 3));
      });
    }

    it('LimitFindInstances caps the instance level', async () => {
      expect(await find(IN, [], {}, capped)).to.deep.equal(expected(IN).slice(0, 5));
    });

    it('a smaller Limit wins, a larger one is capped, Since still applies', async () => {
      expect(await find(ST, [], { limit: 2 }, capped)).to.deep.equal(expected(ST).slice(0, 2));
      expect(await find(ST, [], { limit: 10 }, capped)).to.deep.equal(expected(ST).slice(0, 3));
      expect(await find(ST, [], { since: 2 }, capped)).to.deep.equal(expected(ST).slice(2, 5));
      expect(await find(IN, [], { since: 4, limit: 100 }, capped)).to.deep.equal(expected(IN).slice(4, 9));
    });

    it('caps answers filtered on the files too', async () => {
      const want = expectedStudies((s) => s.address?.startsWith('Main') ?? false);
      expect(want.length).to.be.greaterThan(3);
      expect(await find(ST, [[InstitutionAddress, 'Main*']], {}, capped)).to.deep.equal(want.slice(0, 3));
    });

    it('caps a constrained query', async () => {
      const want = expected(IN, (r) => r.series.modality === 'CT');
      expect(want.length).to.be.greaterThan(5);
      expect(await find(IN, [[T.Modality, 'CT']], {}, capped)).to.deep.equal(want.slice(0, 5));
    });
  });

  // ---------------------------------------------------------------- computed tags

  describe('computedTags', () => {
    const distinctSorted = (values: string[]) => [...new Set(values)].sort().join('\\');

    it('study level: counts, ModalitiesInStudy and SOPClassesInStudy', async () => {
      const rows = await engine.find({ level: ST, constraints: [] });
      const tags = [
        T.NumberOfStudyRelatedSeries,
        T.NumberOfStudyRelatedInstances,
        T.ModalitiesInStudy,
        T.SOPClassesInStudy,
        T.NumberOfSeriesRelatedInstances, // not a study tag: left out
        T.NumberOfPatientRelatedStudies, // not a study tag: left out
      ];
      const computed = engine.computedTags(rows, ST, tags);
      expect(computed.size).to.equal(STUDIES.length);
      for (const row of rows) {
        const mine = recs.filter((r) => r.ids[1] === row.publicId);
        const want = new Map<Tag, string>([
          [T.NumberOfStudyRelatedSeries, String(new Set(mine.map((r) => r.seriesUid)).size)],
          [T.NumberOfStudyRelatedInstances, String(mine.length)],
          [T.ModalitiesInStudy, distinctSorted(mine.map((r) => r.series.modality))],
          [T.SOPClassesInStudy, distinctSorted(mine.map((r) => r.series.sopClass))],
        ]);
        expect(computed.get(row.id)).to.deep.equal(want);
      }
    });

    it('patient level: related studies, series and instances', async () => {
      const rows = await engine.find({ level: P, constraints: [] });
      const computed = engine.computedTags(rows, P, [
        T.NumberOfPatientRelatedStudies,
        T.NumberOfPatientRelatedSeries,
        T.NumberOfPatientRelatedInstances,
        T.ModalitiesInStudy, // a study tag: left out
      ]);
      for (const row of rows) {
        const mine = recs.filter((r) => r.ids[0] === row.publicId);
        expect(computed.get(row.id)).to.deep.equal(
          new Map<Tag, string>([
            [T.NumberOfPatientRelatedStudies, String(new Set(mine.map((r) => r.studyUid)).size)],
            [T.NumberOfPatientRelatedSeries, String(new Set(mine.map((r) => r.seriesUid)).size)],
            [T.NumberOfPatientRelatedInstances, String(mine.length)],
          ]),
        );
      }
    });

    it('series level: related instances', async () => {
      const rows = await engine.find({ level: SE, constraints: [] });
      const computed = engine.computedTags(rows, SE, [T.NumberOfSeriesRelatedInstances, T.NumberOfStudyRelatedInstances]);
      for (const row of rows) {
        const n = recs.filter((r) => r.ids[2] === row.publicId).length;
        expect(computed.get(row.id)).to.deep.equal(new Map<Tag, string>([[T.NumberOfSeriesRelatedInstances, String(n)]]));
      }
    });

    it('the index answers nothing (and does not fail) for descendants at the same or a higher level', () => {
      const ids = expected(SE).map(internalId);
      expect([...index.distinctDescendantValues(ids, SE, SE, T.Modality).values()]).to.deep.equal(ids.map(() => []));
      expect([...index.countDescendants(ids, SE, ST).values()]).to.deep.equal(ids.map(() => 0));
    });

    it('only for the rows asked for', async () => {
      const rows = await engine.find({ level: ST, constraints: [{ tag: T.PatientName, value: 'SMITH*' }] });
      const computed = engine.computedTags(rows, ST, [T.ModalitiesInStudy]);
      expect([...computed.keys()]).to.deep.equal(rows.map((r) => r.id));
      const mine = recs.filter((r) => fold(r.patient.name).startsWith('SMITH'));
      expect([...computed.values()].map((m) => m.get(T.ModalitiesInStudy))).to.deep.equal([
        distinctSorted(mine.map((r) => r.series.modality)),
      ]);
    });
  });

  // ---------------------------------------------------------------- main tags with ancestors

  describe('mainTagsWithAncestors', () => {
    it('instance level: the tags of the instance, its series, study and patient', async () => {
      const rows = await engine.find({ level: IN, constraints: [{ tag: T.PatientID, value: 'PID-MUL1' }] });
      const mine = recs.filter((r) => r.patient.id === 'PID-MUL1');
      expect(rows.length).to.equal(mine.length);
      const tags = engine.mainTagsWithAncestors(rows);
      for (const row of rows) {
        const r = mine.find((m) => m.ids[3] === row.publicId)!;
        const t = tags.get(row.id)!;
        expect(t.get(T.PatientName)).to.equal('MÜLLER^Hans');
        expect(t.get(T.PatientID)).to.equal(r.patient.id);
        expect(t.get(T.PatientBirthDate)).to.equal(r.patient.birthDate);
        expect(t.get(T.StudyInstanceUID)).to.equal(r.studyUid);
        expect(t.get(T.StudyDate)).to.equal(r.study.date);
        expect(t.get(T.AccessionNumber)).to.equal(r.study.accession);
        expect(t.get(T.StudyDescription)).to.equal(r.study.description);
        expect(t.get(T.SeriesInstanceUID)).to.equal(r.seriesUid);
        expect(t.get(T.Modality)).to.equal(r.series.modality);
        expect(t.get(T.BodyPartExamined)).to.equal(r.series.bodyPart);
        expect(t.get(T.SOPInstanceUID)).to.equal(r.sopUid);
        expect(t.get(T.InstanceNumber)).to.equal(String(r.instanceNumber));
        // Not main tags: not in the index.
        expect(t.has(InstitutionAddress)).to.equal(false);
        expect(t.has(SliceThickness)).to.equal(false);
      }
    });

    it('study level: study and patient tags, nothing from below', async () => {
      const rows = await engine.find({ level: ST, constraints: [] });
      const tags = engine.mainTagsWithAncestors(rows);
      expect([...tags.keys()]).to.deep.equal(rows.map((r) => r.id));
      for (const row of rows) {
        const r = recs.find((m) => m.ids[1] === row.publicId)!;
        const t = tags.get(row.id)!;
        expect(t.get(T.PatientName)).to.equal(r.patient.name);
        expect(t.get(T.StudyTime)).to.equal(r.study.time);
        expect(t.get(T.StudyInstanceUID)).to.equal(r.studyUid);
        expect(t.has(T.Modality)).to.equal(false);
        expect(t.has(T.SOPInstanceUID)).to.equal(false);
      }
    });

    it('patient level: the patient tags only', async () => {
      const rows = await engine.find({ level: P, constraints: [{ tag: T.PatientName, value: '\u{203FF}*' }] });
      expect(rows.length).to.equal(1);
      const t = engine.mainTagsWithAncestors(rows).get(rows[0]!.id)!;
      expect(t.get(T.PatientName)).to.equal('\u{203FF}^TARO');
      expect(t.has(T.StudyDate)).to.equal(false);
    });
  });

  // ---------------------------------------------------------------- query plans

  describe('indexed constraints use the (tag, norm) index', () => {
    const c = (tag: Tag, level: Level, rest: Record<string, unknown>) => ({ tag, level, ...rest }) as IndexConstraint;
    const plans: Array<[string, Level, IndexConstraint[], RegExp]> = [
      ['equal, case-insensitive', P, [c(T.PatientName, P, { kind: 'equal', value: 'DOE^JOHN', caseSensitive: false })], /\(tag=\? AND norm=\?\)/],
      ['equal, case-sensitive', ST, [c(T.AccessionNumber, ST, { kind: 'equal', value: 'ACC-101', caseSensitive: true })], /\(tag=\? AND norm=\?\)/],
      ['wildcard with a prefix', P, [c(T.PatientName, P, { kind: 'wildcard', pattern: 'MUL*', caseSensitive: false })], /\(tag=\? AND norm>\? AND norm<\?\)/],
      [
        'wildcard with a prefix, case-sensitive',
        ST,
        [c(T.StudyDescription, ST, { kind: 'wildcard', pattern: 'Brain*', caseSensitive: true })],
        /\(tag=\? AND norm>\? AND norm<\?\)/,
      ],
      ['closed range', ST, [c(T.StudyDate, ST, { kind: 'range', lower: '20200101', upper: '20201231' })], /\(tag=\? AND norm>\? AND norm<\?\)/],
      ['open-upper range', ST, [c(T.StudyDate, ST, { kind: 'range', lower: '20200101' })], /\(tag=\? AND norm>\?\)/],
      ['open-lower range', ST, [c(T.StudyDate, ST, { kind: 'range', upper: '20200101' })], /\(tag=\? AND norm<\?\)/],
      ['list', ST, [c(T.StudyInstanceUID, ST, { kind: 'list', values: ['1.2', '1.3'], caseSensitive: true })], /\(tag=\? AND norm=\?\)/],
      ['ancestor at instance level', IN, [c(T.PatientName, P, { kind: 'equal', value: 'DOE^JOHN', caseSensitive: false })], /\(tag=\? AND norm=\?\)/],
      [
        'ancestors at instance level (an instance query within one series)',
        IN,
        [
          c(T.StudyInstanceUID, ST, { kind: 'equal', value: '1.2.3', caseSensitive: true }),
          c(T.SeriesInstanceUID, SE, { kind: 'equal', value: '1.2.3.4', caseSensitive: true }),
        ],
        /\(tag=\? AND norm=\?\)/,
      ],
      ['ancestor range at series level', SE, [c(T.StudyDate, ST, { kind: 'range', lower: '20200101', upper: '20200131' })], /\(tag=\? AND norm>\? AND norm<\?\)/],
      ['descendant at study level', ST, [c(T.Modality, SE, { kind: 'equal', value: 'MR', caseSensitive: true })], /\(tag=\? AND norm=\?\)/],
    ];
    for (const [title, level, constraints, search] of plans) {
      it(title, () => {
        const plan = index.explainLookup(level, constraints);
        const text = plan.join('\n');
        expect(text).to.include('main_tags_lookup');
        expect(plan.some((line) => /main_tags_lookup/.test(line) && search.test(line)), text).to.equal(true);
        expect(plan.filter((line) => /^SCAN (main_tags|t)\b/.test(line)), text).to.deep.equal([]);
        if (constraints.every((k) => k.level <= level)) {
          // Constraints at the level or above select the resources: no walk over every resource of the level.
          expect(plan.filter((line) => /^SCAN a0\b|^SEARCH a0 USING (COVERING )?INDEX resources_level \(level=\?\)$/.test(line)), text).to.deep.equal([]);
        }
      });
    }

    it('the SQL explained is the SQL that answers', () => {
      // explainLookup and lookup build the same statement: the constraint explained above selects the right studies.
      const constraints = [c(T.StudyDate, ST, { kind: 'range', lower: '20200101', upper: '20201231' })];
      expect(index.lookup(ST, constraints).map((r) => r.publicId)).to.deep.equal(
        expectedStudies((s) => s.date >= '20200101' && s.date <= '20201231'),
      );
    });
  });
});
