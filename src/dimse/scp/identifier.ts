/** The Identifier of a C-FIND, C-GET or C-MOVE request, read in its presentation context's transfer syntax. */
import type { DataSet } from '../../dicom/dataset.js';
import { readDataset } from '../../dicom/reader.js';
import { FindRefusal } from '../handlers.js';
import { Status } from '../status.js';
import type { ScpSession } from './session.js';

/** An unreadable Identifier is refused with 0xC000 (Cannot Understand), as a `FindRefusal`. */
export function readIdentifier(session: ScpSession, contextId: number, dataset: readonly Buffer[] | undefined): DataSet {
  try {
    return readDataset(Buffer.concat(dataset ?? []), session.transferSyntaxOf(contextId));
  } catch (e) {
    throw new FindRefusal(Status.CannotUnderstand, `unreadable identifier: ${(e as Error).message}`);
  }
}
