/** What `make` throws, or undefined if it returns: for asserting on an error's fields and message. */
export function thrown(make: () => unknown): unknown {
  try {
    make();
    return undefined;
  } catch (err) {
    return err;
  }
}
