mod images;
mod plans;
mod provider_files;
mod resolve;
mod statusline;
