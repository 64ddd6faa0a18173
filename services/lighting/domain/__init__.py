"""The lighting domain's pure logic: the sun, the council's schedule, one circuit's model."""
