/** pacsnode's own version (package.json's), reported as `PacsnodeVersion` by `/system` and by `pacsnode --version`. */
export const PACSNODE_VERSION = '0.1.0';
