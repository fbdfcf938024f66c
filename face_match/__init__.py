"""face_match package."""
