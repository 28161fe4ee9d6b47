"""Business logic shared by the API routes and the activities, plus settings and the database."""
