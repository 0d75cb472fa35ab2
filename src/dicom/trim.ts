/**
 * Padding removal in linear time. (Regular expressions like `/[\0 ]+$/` are quadratic on long runs of spaces
 * that do not reach the end: a 60 KB value of spaces blocked the event loop for seconds.)
 */

function isPad(code: number, withWhitespace: boolean): boolean {
  return code === 0x20 || code === 0x00 || (withWhitespace && (code === 0x09 || code === 0x0a || code === 0x0d || code === 0x0c));
}

/** Removes trailing spaces and NULs (and tabs/line ends when `withWhitespace`). */
export function trimEndPad(value: string, withWhitespace = false): string {
  let end = value.length;
  while (end > 0 && isPad(value.charCodeAt(end - 1), withWhitespace)) end--;
  return end === value.length ? value : value.slice(0, end);
}

/** Removes leading spaces (and tabs/line ends when `withWhitespace`; NULs too). */
export function trimStartPad(value: string, withWhitespace = false): string {
  let start = 0;
  while (start < value.length && isPad(value.charCodeAt(start), withWhitespace)) start++;
  return start === 0 ? value : value.slice(start);
}

/** Both ends. */
export function trimPad(value: string, withWhitespace = false): string {
  return trimStartPad(trimEndPad(value, withWhitespace), withWhitespace);
}

/** Removes trailing occurrences of one character. */
export function trimEndChar(value: string, char: string): string {
  const code = char.charCodeAt(0);
  let end = value.length;
  while (end > 0 && value.charCodeAt(end - 1) === code) end--;
  return end === value.length ? value : value.slice(0, end);
}
