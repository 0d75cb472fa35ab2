import { expect } from 'chai';
import { trimEndChar, trimEndPad, trimPad, trimStartPad } from '../src/dicom/trim.js';

describe('linear padding removal', function () {
  const cases: Array<[string, (s: string) => string, string, string]> = [
    ['trailing spaces and NULs', (s) => trimEndPad(s), 'AB \0 ', 'AB'],
    ['inner spaces kept', (s) => trimEndPad(s), 'A  B  ', 'A  B'],
    ['nothing to trim returns the same string', (s) => trimEndPad(s), 'ABC', 'ABC'],
    ['all padding', (s) => trimEndPad(s), '   \0', ''],
    ['whitespace only when asked', (s) => trimEndPad(s), 'A\r\n', 'A\r\n'],
    ['whitespace when asked', (s) => trimEndPad(s, true), 'A\r\n\t ', 'A'],
    ['leading spaces', (s) => trimStartPad(s), '  A ', 'A '],
    ['both ends', (s) => trimPad(s, true), ' \tA B\0 ', 'A B'],
    ['one character', (s) => trimEndChar(s, '0'), '12000', '12'],
    ['long run of spaces before a character is kept whole', (s) => trimEndPad(s), `${' '.repeat(100000)}x`, `${' '.repeat(100000)}x`],
  ];
  for (const [name, fn, input, expected] of cases) {
    it(name, () => expect(fn(input)).to.equal(expected));
  }
});

describe('deflated datasets: bounded inflation', function () {
  it('refuses a deflate bomb with a DicomFormatError instead of allocating gigabytes', async () => {
    const { deflateRawSync } = await import('node:zlib');
    const { readPart10, maxInflatedSize } = await import('../src/dicom/reader.js');
    const { DicomFormatError } = await import('../src/core/errors.js');
    const { buildMetaHeader } = await import('../src/dicom/writer.js');
    const meta = buildMetaHeader({ sopClassUid: '1.2.3', sopInstanceUid: '1.2.3.4', transferSyntaxUid: '1.2.840.10008.1.2.1.99' });
    // 80 MB of zeros (a valid-looking element header, then zero bytes) deflates to about 80 KB.
    const header = Buffer.from([0x08, 0x00, 0x16, 0x00, 0x55, 0x49, 0x04, 0x00, 0x31, 0x2e, 0x32, 0x00]);
    const bomb = Buffer.concat([meta, deflateRawSync(Buffer.concat([header, Buffer.alloc(80 << 20)]))]);
    expect(maxInflatedSize(bomb.length)).to.equal(64 << 20);
    expect(() => readPart10(bomb)).to.throw(DicomFormatError, /beyond .* bytes/);
  });
});
