/**
 * A deliberately minimal Node ingest server, for calibration only (not pacsnode): it collects the body, hashes
 * it, parses it up to the pixel data, writes it with fsync through pacsnode's writer threads, inserts one row in
 * SQLite and renames the file. `npm run bench -- --ceiling` runs the same workload against it, to show how much
 * of pacsnode's cost is Node's floor on this machine and how much is pacsnode's own work.
 *
 *   node --import tsx bench/ceiling-server.ts <port> <folder>
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, renameSync } from 'node:fs';
import http from 'node:http';
import Database from 'better-sqlite3';
import dicomParser from 'dicom-parser';
import { WriterPool } from '../src/store/writer-pool.js';

const port = Number(process.argv[2]);
const root = process.argv[3]!;
mkdirSync(`${root}/tmp`, { recursive: true });
const db = new Database(`${root}/index.sqlite`);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.exec('CREATE TABLE IF NOT EXISTS i (id INTEGER PRIMARY KEY, uid TEXT UNIQUE, uuid TEXT, md5 TEXT)');
const insert = db.prepare('INSERT OR IGNORE INTO i (uid, uuid, md5) VALUES (?, ?, ?)');
const pool = new WriterPool(2);

http
  .createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      void (async () => {
        if (req.method === 'GET' && req.url === '/statistics') {
          const n = (db.prepare('SELECT COUNT(*) AS n FROM i').get() as { n: number }).n;
          return res.end(JSON.stringify({ CountInstances: n }));
        }
        if (req.method === 'GET' && req.url === '/patients') {
          db.exec('DELETE FROM i');
          return res.end('[]');
        }
        const body = Buffer.concat(chunks);
        const md5 = createHash('md5').update(body).digest('hex');
        const uid = dicomParser.parseDicom(body, { untilTag: 'x7fe00010' }).string('x00080018')!;
        const uuid = randomUUID();
        const dir = `${root}/${uuid.slice(0, 2)}/${uuid.slice(2, 4)}`;
        await pool.write(`${root}/tmp/${uuid}`, body, true, dir);
        insert.run(uid, uuid, md5);
        renameSync(`${root}/tmp/${uuid}`, `${dir}/${uuid}`);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ ID: uid, Status: 'Success' }, null, 3));
      })();
    });
  })
  .listen(port, '127.0.0.1', () => process.stdout.write(`ready ${port}\n`));
