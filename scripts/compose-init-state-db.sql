CREATE DATABASE ghl_sync_state;
