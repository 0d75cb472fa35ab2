/**
 * PS3.4 §C.2.2.2 attribute matching on values read from files: parseMatcher (query string -> matcher) and
 * matchValue (matcher x attribute values). Table driven: one `it` per row.
 */
import { expect } from 'chai';
import { isCaseSensitive, matchValue, parseMatcher, type Matcher } from '../src/query/matching.js';

/** Renders control and non-ASCII characters visibly in test titles. */
function show(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    out += code < 0x20 || code > 0x7e ? `\\u${code.toString(16).padStart(4, '0')}` : text[i];
  }
  return `"${out}"`;
}

describe('matching', () => {
  describe('parseMatcher', () => {
    const rows: Array<[raw: string, vr: string, expected: Matcher]> = [
      // single value
      ['DOE^JOHN', 'PN', { kind: 'equal', value: 'DOE^JOHN' }],
      ['  DOE  ', 'LO', { kind: 'equal', value: 'DOE' }],
      ['CT', 'CS', { kind: 'equal', value: 'CT' }],
      ['20200101', 'DA', { kind: 'equal', value: '20200101' }],
      ['1.2.840.10008', 'UI', { kind: 'equal', value: '1.2.840.10008' }],
      ['1.2.3\0', 'UI', { kind: 'equal', value: '1.2.3' }],
      ['1.2.3 ', 'UI', { kind: 'equal', value: '1.2.3' }],
      // a hyphen is a range only for DA, TM and DT
      ['ABC-DEF', 'LO', { kind: 'equal', value: 'ABC-DEF' }],
      ['2020-2021', 'SH', { kind: 'equal', value: '2020-2021' }],
      // universal
      ['', 'PN', { kind: 'universal' }],
      ['   ', 'LO', { kind: 'universal' }],
      ['*', 'PN', { kind: 'universal' }],
      ['*', 'DA', { kind: 'universal' }],
      ['-', 'DA', { kind: 'universal' }],
      ['\\', 'CS', { kind: 'universal' }],
      ['', 'UI', { kind: 'universal' }],
      // wildcards
      ['DOE*', 'PN', { kind: 'wildcard', pattern: 'DOE*' }],
      ['*DOE', 'PN', { kind: 'wildcard', pattern: '*DOE' }],
      ['D*E', 'PN', { kind: 'wildcard', pattern: 'D*E' }],
      ['?OE', 'PN', { kind: 'wildcard', pattern: '?OE' }],
      ['D?E', 'LO', { kind: 'wildcard', pattern: 'D?E' }],
      ['DO?', 'SH', { kind: 'wildcard', pattern: 'DO?' }],
      ['*O*?', 'LO', { kind: 'wildcard', pattern: '*O*?' }],
      ['**', 'LO', { kind: 'wildcard', pattern: '**' }],
      ['2020*', 'DA', { kind: 'wildcard', pattern: '2020*' }],
      // UIDs take no wildcards: `*` and `?` are literal there
      ['1.2.*', 'UI', { kind: 'equal', value: '1.2.*' }],
      ['1.2.?', 'UI', { kind: 'equal', value: '1.2.?' }],
      // lists
      ['1.2.3\\1.2.4', 'UI', { kind: 'list', values: ['1.2.3', '1.2.4'] }],
      ['1.2.3\\1.2.4\\1.2.5', 'UI', { kind: 'list', values: ['1.2.3', '1.2.4', '1.2.5'] }],
      ['CT\\MR', 'CS', { kind: 'list', values: ['CT', 'MR'] }],
      ['CT \\ MR', 'CS', { kind: 'list', values: ['CT', 'MR'] }],
      ['DOE^JOHN\\SMITH^ANNA', 'PN', { kind: 'list', values: ['DOE^JOHN', 'SMITH^ANNA'] }],
      ['20200101\\20200301', 'DA', { kind: 'list', values: ['20200101', '20200301'] }],
      ['CT\\', 'CS', { kind: 'equal', value: 'CT' }],
      ['\\DOE*', 'PN', { kind: 'wildcard', pattern: 'DOE*' }],
      ['\\20200101-', 'DA', { kind: 'range', lower: '20200101' }],
      // DA ranges
      ['20200101-20201231', 'DA', { kind: 'range', lower: '20200101', upper: '20201231' }],
      ['-20200101', 'DA', { kind: 'range', upper: '20200101' }],
      ['20200101-', 'DA', { kind: 'range', lower: '20200101' }],
      [' 20200101 - 20201231 ', 'DA', { kind: 'range', lower: '20200101', upper: '20201231' }],
      // TM and DT ranges: the upper bound covers the whole unit it names, unless it has a fraction
      ['1200-1300', 'TM', { kind: 'range', lower: '1200', upper: '1300\uffff' }],
      ['-0800', 'TM', { kind: 'range', upper: '0800\uffff' }],
      ['1200-', 'TM', { kind: 'range', lower: '1200' }],
      ['1200-123000.5', 'TM', { kind: 'range', lower: '1200', upper: '123000.5' }],
      ['20200101-20200102', 'DT', { kind: 'range', lower: '20200101', upper: '20200102\uffff' }],
      ['-2020', 'DT', { kind: 'range', upper: '2020\uffff' }],
    ];
    for (const [raw, vr, expected] of rows) {
      it(`${vr} ${show(raw)} -> ${expected.kind}`, () => {
        expect(parseMatcher(raw, vr)).to.deep.equal(expected);
      });
    }
  });

  describe('isCaseSensitive', () => {
    const rows: Array<[vr: string, flag: boolean, expected: boolean]> = [
      ['PN', true, false],
      ['PN', false, false],
      ['LO', true, true],
      ['LO', false, false],
      ['SH', true, true],
      ['CS', true, true],
      ['CS', false, false],
    ];
    for (const [vr, flag, expected] of rows) {
      it(`${vr} with CaseSensitive=${flag} -> ${expected}`, () => {
        expect(isCaseSensitive(vr, flag)).to.equal(expected);
      });
    }
  });

  describe('matchValue', () => {
    /**
     * query, VR, the query's CaseSensitive flag, the attribute's values (undefined: absent), expected.
     * The flag goes through isCaseSensitive as the query engine does (PN is never case-sensitive).
     */
    type Row = [query: string, vr: string, caseSensitive: boolean, values: string[] | undefined, expected: boolean];
    const groups: Record<string, Row[]> = {
      'single value': [
        ['DOE^JOHN', 'PN', true, ['DOE^JOHN'], true],
        ['DOE^JOHN', 'PN', true, ['DOE^JANE'], false],
        ['DOE', 'PN', true, ['DOE^JOHN'], false],
        ['DOE^JOHN', 'PN', true, ['DOE^JOHN^'], false],
        ['CT', 'CS', true, ['CT'], true],
        ['CT', 'CS', true, ['CTX'], false],
        ['CT', 'CS', true, undefined, false],
        ['CT', 'CS', true, [], false],
        ['20200101', 'DA', true, ['20200101'], true],
        ['20200101', 'DA', true, ['20200102'], false],
        ['1.2.3', 'UI', true, ['1.2.3'], true],
        ['1.2.3', 'UI', true, ['1.2.30'], false],
        ['1.2.3\0', 'UI', true, ['1.2.3'], true],
      ],
      universal: [
        ['', 'LO', true, undefined, true],
        ['', 'LO', true, ['anything'], true],
        ['*', 'LO', true, undefined, true],
        ['*', 'PN', true, [''], true],
        ['*', 'DA', true, ['20200101'], true],
        ['-', 'DA', true, undefined, true],
      ],
      wildcards: [
        ['DOE*', 'PN', true, ['DOE^JOHN'], true],
        ['DOE*', 'PN', true, ['DOE'], true],
        ['DOE*', 'PN', true, ['JOHN^DOE'], false],
        ['DOE*', 'PN', true, undefined, false],
        ['DOE*', 'PN', true, [''], false],
        ['*JOHN', 'PN', true, ['DOE^JOHN'], true],
        ['*JOHN', 'PN', true, ['DOE^JOHNNY'], false],
        ['D*N', 'PN', true, ['DOE^JOHN'], true],
        ['D*N', 'PN', true, ['DOE^JOHNS'], false],
        ['?OE*', 'PN', true, ['DOE^X'], true],
        ['?OE*', 'PN', true, ['OE^X'], false],
        ['DOE^J?HN', 'PN', true, ['DOE^JOHN'], true],
        ['DOE^J?HN', 'PN', true, ['DOE^JHN'], false],
        ['DOE^J?HN', 'PN', true, ['DOE^JOOHN'], false],
        ['DO?', 'SH', true, ['DOE'], true],
        ['DO?', 'SH', true, ['DO'], false],
        ['DO?', 'SH', true, ['DOES'], false],
        ['D*E*N', 'PN', true, ['DOE^JOHN'], true],
        ['D*X*N', 'PN', true, ['DOE^JOHN'], false],
        ['*O*?', 'LO', true, ['ONE'], true],
        ['*O*?', 'LO', true, ['NO'], false],
        ['??', 'LO', true, ['AB'], true],
        ['??', 'LO', true, ['ABC'], false],
        ['**', 'LO', true, ['X'], true],
        ['A*B', 'LO', true, ['A\nB'], true],
        // `?` is one character, also outside the Basic Multilingual Plane
        ['?^TARO', 'PN', true, ['\u{2000B}^TARO'], true],
        ['\u{2000B}*', 'PN', true, ['\u{2000B}^TARO'], true],
        ['1.2.*', 'UI', true, ['1.2.3'], false],
        ['1.2.*', 'UI', true, ['1.2.*'], true],
      ],
      'regexp metacharacters are literal': [
        ['A.B*', 'LO', true, ['A.BC'], true],
        ['A.B*', 'LO', true, ['AXBC'], false],
        ['A.B', 'LO', true, ['AXB'], false],
        ['C++*', 'LO', true, ['C++ notes'], true],
        ['C++*', 'LO', true, ['CC'], false],
        ['(1)*', 'LO', true, ['(1) left'], true],
        ['(1)*', 'LO', true, ['1'], false],
        ['[AB]*', 'LO', true, ['[AB]Z'], true],
        ['[AB]*', 'LO', true, ['AZ'], false],
        ['A|B*', 'LO', true, ['A|BC'], true],
        ['A|B*', 'LO', true, ['A'], false],
        ['$^{2}*', 'LO', true, ['$^{2}x'], true],
        ['$^{2}*', 'LO', true, ['^{2}'], false],
      ],
      'DA ranges': [
        ['20200101-20201231', 'DA', true, ['20200615'], true],
        ['20200101-20201231', 'DA', true, ['20200101'], true],
        ['20200101-20201231', 'DA', true, ['20201231'], true],
        ['20200101-20201231', 'DA', true, ['20191231'], false],
        ['20200101-20201231', 'DA', true, ['20210101'], false],
        ['-20200101', 'DA', true, ['19991231'], true],
        ['-20200101', 'DA', true, ['20200101'], true],
        ['-20200101', 'DA', true, ['20200102'], false],
        ['20200101-', 'DA', true, ['20200101'], true],
        ['20200101-', 'DA', true, ['20991231'], true],
        ['20200101-', 'DA', true, ['20191231'], false],
      ],
      'TM ranges': [
        ['1200-1300', 'TM', true, ['120000'], true],
        ['1200-1300', 'TM', true, ['1200'], true],
        ['1200-1300', 'TM', true, ['1300'], true],
        ['1200-1300', 'TM', true, ['130059'], true],
        ['1200-1300', 'TM', true, ['130059.999999'], true],
        ['1200-1300', 'TM', true, ['130100'], false],
        ['1200-1300', 'TM', true, ['115959.999'], false],
        ['-0800', 'TM', true, ['075959'], true],
        ['-0800', 'TM', true, ['080059.5'], true],
        ['-0800', 'TM', true, ['080100'], false],
        ['1200-', 'TM', true, ['235959'], true],
        ['1200-', 'TM', true, ['1159'], false],
        ['1200-123000.5', 'TM', true, ['123000.4'], true],
        ['1200-123000.5', 'TM', true, ['123000.5'], true],
        ['1200-123000.5', 'TM', true, ['123000.6'], false],
      ],
      'DT ranges': [
        ['20200101-20200102', 'DT', true, ['20200101000000'], true],
        ['20200101-20200102', 'DT', true, ['20200102235959.999'], true],
        ['20200101-20200102', 'DT', true, ['20200103000000'], false],
        ['20200101-20200102', 'DT', true, ['20191231235959'], false],
        ['20200101120000-20200101130000', 'DT', true, ['20200101130000.123'], true],
        ['20200101120000-20200101130000', 'DT', true, ['20200101130001'], false],
        ['20200101120000-20200101130000', 'DT', true, ['20200101115959'], false],
        ['-2020', 'DT', true, ['20201231235959'], true],
        ['-2020', 'DT', true, ['20210101'], false],
        ['2021-', 'DT', true, ['20210101'], true],
        ['2021-', 'DT', true, ['20201231235959'], false],
      ],
      'empty values never match a range': [
        ['20200101-20201231', 'DA', true, [''], false],
        ['20200101-20201231', 'DA', true, [], false],
        ['20200101-20201231', 'DA', true, undefined, false],
        ['-20200101', 'DA', true, [''], false],
        ['20200101-', 'DA', true, [''], false],
        ['-1200', 'TM', true, [''], false],
        ['-2020', 'DT', true, [], false],
      ],
      'UID lists': [
        ['1.2.3\\1.2.4', 'UI', true, ['1.2.3'], true],
        ['1.2.3\\1.2.4', 'UI', true, ['1.2.4'], true],
        ['1.2.3\\1.2.4', 'UI', true, ['1.2.5'], false],
        ['1.2.3\\1.2.4', 'UI', true, ['1.2'], false],
        ['1.2.3\\1.2.4', 'UI', true, ['1.2.3\\1.2.4'], false],
        ['1.2.3\\1.2.4', 'UI', true, undefined, false],
        ['1.2.3\\1.2.4\\1.2.5', 'UI', true, ['1.2.5'], true],
      ],
      'lists for other VRs': [
        ['CT\\MR', 'CS', true, ['MR'], true],
        ['CT\\MR', 'CS', true, ['US'], false],
        ['ct\\mr', 'CS', false, ['MR'], true],
        ['ct\\mr', 'CS', true, ['MR'], false],
        ['DOE^JOHN\\SMITH^ANNA', 'PN', true, ['smith^anna'], true],
        ['DOE^JOHN\\SMITH^ANNA', 'PN', true, ['SMITH'], false],
        ['20200101\\20200301', 'DA', true, ['20200301'], true],
        ['20200101\\20200301', 'DA', true, ['20200201'], false],
        ['ACC1\\ACC2', 'SH', true, ['ACC2'], true],
        ['ACC1\\ACC2', 'SH', true, ['ACC'], false],
      ],
      'case sensitivity (LO, SH, CS)': [
        ['Brain', 'LO', true, ['Brain'], true],
        ['Brain', 'LO', true, ['brain'], false],
        ['Brain', 'LO', false, ['BRAIN'], true],
        ['Brain', 'LO', false, ['brain'], true],
        ['Br*', 'LO', true, ['brain'], false],
        ['Br*', 'LO', false, ['brain'], true],
        ['acc1', 'SH', true, ['ACC1'], false],
        ['acc1', 'SH', false, ['ACC1'], true],
        ['ct', 'CS', true, ['CT'], false],
        ['ct', 'CS', false, ['CT'], true],
        ['Café', 'LO', true, ['Cafe'], false],
        ['Café', 'LO', true, ['Café'], true],
        ['CAFÉ', 'LO', false, ['cafe'], true],
      ],
      'PN is always case- and accent-insensitive': [
        ['doe^john', 'PN', true, ['DOE^JOHN'], true],
        ['DOE^JOHN', 'PN', false, ['doe^john'], true],
        ['doe*', 'PN', true, ['DOE^JOHN'], true],
        ['MÜLLER', 'PN', true, ['muller'], true],
        ['muller', 'PN', true, ['MÜLLER'], true],
        ['müller^hans', 'PN', true, ['MULLER^HANS'], true],
        ['M?LLER', 'PN', true, ['Müller'], true],
        ['MÜLL*', 'PN', true, ['mulder'], false],
        ['MÜL*', 'PN', true, ['Mülheim'], true],
        ['ÅSA*', 'PN', true, ['asa^b'], true],
        ['MÜLLER\\DOE', 'PN', true, ['Muller'], true],
        ['MILLER', 'PN', true, ['MÜLLER'], false],
      ],
      'multi-valued attributes match when any value does': [
        ['CT', 'CS', true, ['MR', 'CT'], true],
        ['CT', 'CS', true, ['MR', 'US'], false],
        ['DOE*', 'PN', true, ['SMITH', 'DOE^J'], true],
        ['DOE*', 'PN', true, ['SMITH', 'JONES'], false],
        ['CT\\MR', 'CS', true, ['US', 'MR'], true],
        ['1.2.3\\1.2.4', 'UI', true, ['9', '1.2.4'], true],
        ['20200101-20201231', 'DA', true, ['20190101', '20200615'], true],
        ['20200101-20201231', 'DA', true, ['', '20200615'], true],
        ['20200101-20201231', 'DA', true, ['', ''], false],
        ['20200101-20201231', 'DA', true, ['20190101', '20210101'], false],
        ['ORIGINAL', 'CS', false, ['derived', 'original'], true],
      ],
    };
    for (const [group, rows] of Object.entries(groups)) {
      describe(group, () => {
        for (const [query, vr, flag, values, expected] of rows) {
          const title = `${vr} ${show(query)}${flag ? '' : ' (case-insensitive)'} vs ${
            values === undefined ? 'absent' : `[${values.map(show).join(', ')}]`
          } -> ${expected}`;
          it(title, () => {
            const matcher = parseMatcher(query, vr);
            expect(matchValue(matcher, values, isCaseSensitive(vr, flag))).to.equal(expected);
          });
        }
      });
    }
  });
});
