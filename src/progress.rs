//! Progress reporting on stderr: spinners on a TTY, one plain line per state change otherwise.
