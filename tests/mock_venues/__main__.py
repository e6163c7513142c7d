"""``python -m tests.mock_venues`` runs the mock Lighter venue (same options as lighter_venue)."""

from tests.mock_venues.lighter_venue import main

raise SystemExit(main())
