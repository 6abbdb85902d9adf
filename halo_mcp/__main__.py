from halo_mcp.cli import main

# Guarded: a worker process started with "spawn" imports the main module too.
if __name__ == "__main__":
    raise SystemExit(main())
