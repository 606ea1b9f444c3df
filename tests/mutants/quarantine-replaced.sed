# claim: a replaced tensor's old extents wait for a full sync (pool, then journal), so replay can fall back to them
# file: lib/version.c
# tests: powerloss
# changes: 1
# killed by: powerloss (a replacement whose bytes were lost falls back to overwritten bytes: EIO or wrong bytes)
s/s->evicting ? TC_HOLD_RECORD$/1 ? TC_HOLD_RECORD \/* mutant: replaced versions wait for the journal alone *\//
