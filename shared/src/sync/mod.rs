//! The two sync job types: [`rooms::RoomsSync`] (Chatwork's room list into
//! `chatwork_rooms`) and [`messages::MessagesSync`] (each room's messages into
//! `messages`).

pub mod messages;
pub mod rooms;
