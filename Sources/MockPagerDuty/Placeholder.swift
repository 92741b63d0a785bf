enum PlaceholderMockPagerDuty {}
