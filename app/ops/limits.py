"""Process limits the server raises for itself at start-up."""

import resource

# A ceiling for an unlimited hard limit: far more connections than one process serves.
MOST_OPEN_FILES = 1 << 20


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard one, and return it.

    Every connection holds a file descriptor. Many systems start services with a soft
    limit of 1,024 (and a hard one far above it): a client holding a thousand idle
    connections would then leave no descriptor for anyone else until they time out.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MOST_OPEN_FILES if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        return wanted
    return soft
